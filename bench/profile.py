"""Profile coderouterd (or the floor) under load with py-spy; print the hot path.

    .venv/bin/pip install py-spy           # bench-only tool, not a dependency
    .venv/bin/python bench/profile.py                     # 80k non-streaming, c=32
    .venv/bin/python bench/profile.py --stream --size 80k
    .venv/bin/python bench/profile.py --target floor

Starts the mock and the target, pins the target alone on one core, drives it
with the raw client at concurrency 32 from the other core, samples it with
`py-spy record --format raw` and prints the functions with the most samples,
by own time and including callees. The collapsed stacks are kept in
bench/.profile/ for a flame graph (e.g. with inferno or speedscope).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import procs  # noqa: E402
from bodies import SIZES, make_body, make_conversation  # noqa: E402
from common import MALLOC_ENV, TURNS  # noqa: E402
from load import RawClient, build_request  # noqa: E402


def summarize(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    ours = collections.Counter(
        {k: v for k, v in incl.items() if "coderouterd/" in k and "cli.py" not in k}
    )
    by_pkg: collections.Counter[str] = collections.Counter()
    for frame, n in own.items():
        path = frame.rsplit(" (", 1)[-1]
        by_pkg[path.split("/", 1)[0] if "/" in path else path] += n
    out = [
        f"{total} samples; own time by package: "
        + ", ".join(f"{k} {v / total:.0%}" for k, v in by_pkg.most_common(6))
    ]
    for title, counter in (
        ("own time", own),
        ("including callees", incl),
        ("including callees, coderouterd functions only", ours),
    ):
        out.append(f"\ntop {top} by {title}:")
        for frame, n in counter.most_common(top):
            out.append(f"  {n / total:6.1%}  {frame}")
    return "\n".join(out)


def _short(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rpartition(":")[0]
    for marker in ("site-packages/", "/coderouterd/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/coderouterd/":
                path = "coderouterd/" + path
            break
    return f"{name} ({path})"


async def drive(url: str, bodies: list[list[bytes]], seconds: float, concurrency: int) -> int:
    client = RawClient(url, concurrency)
    requests = [[build_request(url, b) for b in turns] for turns in bodies]
    try:
        ok, _, _ = await client.run(requests, 10**9, deadline=time.monotonic() + seconds)
    finally:
        client.close()
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=["coderouterd", "floor"], default="coderouterd")
    ap.add_argument("--size", choices=list(SIZES), default="80k")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument(
        "--translate",
        action="store_true",
        help="Anthropic client to an openai_compat provider (coderouterd only)",
    )
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    ap.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every thread, not only the one holding the GIL (py-spy then counts "
        "threads waiting for the GIL or inside SQLite's wait as busy)",
    )
    ap.add_argument("--log-level", default="warning", help="coderouterd --log-level")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument(
        "--one-core", action="store_true", help="everything on one core, as in the latency phases"
    )
    ap.add_argument(
        "--malloc", action="store_true", help="run coderouterd with the bench's MALLOC_* settings"
    )
    ap.add_argument(
        "--no-replay", action="store_true", help="coderouterd with replay recording off"
    )
    ap.add_argument(
        "--rev", help="profile coderouterd as of this git revision, not the working tree"
    )
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="crp-", dir="/tmp"))
    cores = sorted(os.sched_getaffinity(0))
    started: list[procs.Proc] = []
    try:
        mock = procs.start(
            "mock",
            [sys.executable, str(BENCH / "mock_upstream.py"), "--max-seconds", "600"],
            workdir=work,
        )
        started.append(mock)
        procs.wait_port_line(mock, 10)
        if args.target == "floor":
            target = procs.start(
                "floor",
                [
                    sys.executable,
                    str(BENCH / "floor_proxy.py"),
                    "--upstream",
                    mock.url,
                    "--max-seconds",
                    "600",
                ],
                workdir=work,
            )
            started.append(target)
            procs.wait_port_line(target, 10)
            url = target.url + "/v1/messages"
        else:
            cfg = work / "crd.yaml"
            cfg.write_text(
                f"server: {{host: 127.0.0.1, port: 0, state_dir: {work}/state, "
                f"control_socket: {work}/crd.sock}}\n"
                f"providers:\n  - {{name: a_fast, kind: anthropic, base_url: '{mock.url}', "
                "model: mock-model}\n"
                f"  - {{name: o_fast, kind: openai_compat, base_url: '{mock.url}/v1', "
                "model: mock-model}\nprofiles:\n  - {name: bench, providers: [a_fast]}\n"
                + ("state: {replay: {enabled: false}}\n" if args.no_replay else "")
            )
            env = dict(os.environ)
            if args.malloc:
                env.update(MALLOC_ENV)
            if args.rev:
                sha = procs.export_source(BENCH.parent, args.rev, work / "src")
                env["PYTHONPATH"] = str(work / "src")
                print(f"profiling coderouterd {args.rev} = {sha[:12]}")
            # At --log-level warning the server.started line is filtered: choose the port.
            port = procs.free_port()
            target = procs.start(
                "crd",
                [
                    sys.executable,
                    "-m",
                    "coderouterd.cli",
                    "serve",
                    "--config",
                    str(cfg),
                    "--log-level",
                    args.log_level,
                    "--port",
                    str(port),
                ],
                workdir=work,
                env=env,
            )
            target.port = port
            started.append(target)
            url = target.url + "/v1/messages"
        procs.wait_http(
            target.url + "/healthz" if args.target != "floor" else mock.url + "/healthz", 15
        )
        own = cores[0] if args.one_core else cores[-1]
        procs.pin_self({cores[0]})
        procs.pin(mock.pid, {cores[0]})
        procs.pin(target.pid, {own})
        model = "o_fast" if args.translate else "a_fast"
        # As the bench's throughput phase: one conversation per connection (1k: one body).
        size = SIZES[args.size]
        bodies = [
            make_conversation(size, TURNS, seed=n, stream=args.stream, model=model)
            if size >= SIZES["80k"]
            else [make_body(size, stream=args.stream, model=model)]
            for n in range(args.concurrency)
        ]
        asyncio.run(drive(url, bodies, 2, args.concurrency))  # warm up
        out_dir = BENCH / ".profile"
        out_dir.mkdir(exist_ok=True)
        tag = (
            f"{args.target}{'-translate' if args.translate else ''}-{args.size}-"
            f"{'stream' if args.stream else 'unary'}"
            f"-c{args.concurrency}{'-1core' if args.one_core else ''}"
            f"{'-malloc' if args.malloc else ''}"
        )
        raw = out_dir / f"{tag}.collapsed"
        spy_cmd = [
            spy,
            "record",
            "--format",
            "raw",
            "--rate",
            str(args.rate),
            "--duration",
            str(int(args.seconds)),
            "--pid",
            str(target.pid),
            "--output",
            str(raw),
            "--nonblocking",
        ]
        if args.native:
            spy_cmd.append("--native")
        if not args.all_threads:
            spy_cmd.append("--gil")
        spy_proc = subprocess.Popen(
            spy_cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        before = procs.cpu_sample(target.pid)
        threads_before = procs.thread_cpu(target.pid)
        switches_before = procs.thread_switches(target.pid)
        t0 = time.monotonic()
        ok = asyncio.run(drive(url, bodies, args.seconds - 1, args.concurrency))
        wall = time.monotonic() - t0
        cpu = procs.cpu_sample(target.pid).cpu_s - before.cpu_s
        spy_proc.wait(args.seconds + 30)
        faults = procs.cpu_sample(target.pid).minflt - before.minflt
        threads = procs.thread_cpu(target.pid)
        switches = procs.thread_switches(target.pid)
        main_cpu = threads.get(target.pid, 0.0) - threads_before.get(target.pid, 0.0)
        print(
            f"{tag}: {ok} requests in {wall:.1f}s = {ok / wall:.0f} req/s, "
            f"{cpu / max(ok, 1) * 1e6:.0f} us CPU and {faults / max(ok, 1):.1f} minor faults "
            f"per request (target on core {own}, client and mock on core {cores[0]}; "
            "py-spy sampling adds some)"
        )
        # SQLite (aiosqlite's thread) and large compressions run off the event loop's thread.
        print(
            f"  of which the event loop's thread {main_cpu / max(ok, 1) * 1e6:.0f} us, "
            f"other threads {(cpu - main_cpu) / max(ok, 1) * 1e6:.0f} us"
        )
        # Each switch between the threads of one core costs a few microseconds
        # and leaves the caches colder (a thread waiting for the GIL switches too).
        n = max(ok, 1)
        print(
            "  context switches per request (voluntary/involuntary): "
            + ", ".join(
                f"{'loop' if tid == target.pid else tid} "
                f"{(v - switches_before.get(tid, (0, 0))[0]) / n:.2f}/"
                f"{(i - switches_before.get(tid, (0, 0))[1]) / n:.2f}"
                for tid, (v, i) in sorted(switches.items())
                if v + i > sum(switches_before.get(tid, (0, 0)))
            )
        )
        summary = summarize(raw, args.top)
        (out_dir / f"{tag}.txt").write_text(summary + "\n")
        print(summary)
        print(f"\ncollapsed stacks: {raw}")
    finally:
        for p in reversed(started):
            procs.stop(p)
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
