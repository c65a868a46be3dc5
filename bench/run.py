"""How much coderouterd adds over a bare aiohttp proxy (the floor) and a peer gateway.

    .venv/bin/python bench/run.py            # full run, ~5-10 min on 2 cores
    .venv/bin/python bench/run.py --quick    # under ~2 min, fewer samples

Starts a mock upstream, the floor proxy, coderouterd (three instances:
default, with glibc malloc tuning, and at --log-level info) and, when
bench/peer_litellm.sh has installed it, the LiteLLM proxy; measures them
interleaved round by round; prints every figure with PASS/FAIL and writes
bench/RESULTS.md (bench/RESULTS.quick.md for --quick). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import procs  # noqa: E402
from bodies import SIZES, describe, make_body  # noqa: E402
from load import BENCH_KEY, HEADERS, AioClient, RawClient, build_request  # noqa: E402
from procs import Proc  # noqa: E402

PEER_VENV = BENCH / ".peer-venv"
PACE = "/pace/1000/n/20"  # per-chunk phase: 20 deltas, 1 ms apart
HOLD = "/pace/50000/n/400"  # open-streams phase: a stream that lasts 20 s
ROUTES = {"fast": "", "pace": PACE, "hold": HOLD}
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4194304", "MALLOC_TRIM_THRESHOLD_": "67108864"}

TARGET_PASSTHROUGH = 1.3
TARGET_TRANSLATION = 2.0
TARGET_CHUNK_MS = 0.2
TARGET_THROUGHPUT = 0.7
TARGET_RECORDING = 0.9
TARGET_RSS_MB = 120
TARGET_DRIFT_MB = 10


@dataclass(frozen=True)
class Counts:
    deadline_s: float
    lat_rounds: int  # per body size; a round is `lat_sweeps` requests to each system
    lat_sweeps: int
    lat_warm: int
    lat_cap_s: float  # per body size
    stream_rounds: int
    stream_sweeps: int
    stream_cap_s: float
    tput_count: int  # per system, split over tput_rounds
    tput_rounds: int
    tput_cap_s: float  # per system and round
    drift_count: int
    drift_warm: int
    open_streams: int
    open_cap_s: float


FULL = Counts(
    deadline_s=570,
    lat_rounds=150,
    lat_sweeps=5,
    lat_warm=50,
    lat_cap_s=45,
    stream_rounds=40,
    stream_sweeps=4,
    stream_cap_s=50,
    tput_count=9000,
    tput_rounds=12,
    tput_cap_s=4,
    drift_count=10_000,
    drift_warm=1000,
    open_streams=256,
    open_cap_s=40,
)
QUICK = Counts(
    deadline_s=118,
    lat_rounds=30,
    lat_sweeps=4,
    lat_warm=20,
    lat_cap_s=8,
    stream_rounds=12,
    stream_sweeps=3,
    stream_cap_s=10,
    tput_count=3000,
    tput_rounds=5,
    tput_cap_s=2,
    drift_count=2000,
    drift_warm=300,
    open_streams=256,
    open_cap_s=15,
)


def say(*parts: object) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------- systems


@dataclass
class System:
    name: str
    proc: Proc  # the process whose CPU, faults and RSS are measured
    base: str
    path_style: bool  # True: route in the path (direct/floor); False: route by model
    note: str = ""
    skip: str | None = None
    # Work left after the answer (LiteLLM logs and accounts asynchronously): wait
    # for it after each request so the next system measured does not pay for it.
    settle: bool = False
    settle_s: float = 0.0

    def url(self, route: str) -> str:
        if self.path_style:
            return f"{self.base}{ROUTES[route]}/v1/messages"
        return f"{self.base}/v1/messages"

    def model(self, route: str) -> str:
        return f"{'o' if self.name.endswith('translate') else 'a'}_{route}"


@dataclass
class Ctx:
    counts: Counts
    quick: bool
    workdir: Path
    deadline: float
    cores: list[int]
    procs: list[Proc] = field(default_factory=list)
    systems: dict[str, System] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    results: dict[str, object] = field(default_factory=dict)
    figures: list[dict[str, str]] = field(default_factory=list)
    load: list[dict[str, object]] = field(default_factory=list)
    _mark: tuple[float, dict[str, tuple[float, float]], float] | None = None
    source: str = "working tree"  # what coderouterd code is measured
    pythonpath: str | None = None  # set when --rev exported a fixed commit
    _bodies: dict[tuple[int, bool, str], bytes] = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def body(self, size: int, stream: bool, model: str) -> bytes:
        key = (size, stream, model)
        if key not in self._bodies:
            self._bodies[key] = make_body(size, stream=stream, model=model)
        return self._bodies[key]

    def ours_cpu_s(self) -> float:
        own = os.times()
        total = own.user + own.system
        for p in self.procs:
            with contextlib.suppress(OSError):
                total += procs.cpu_sample(p.pid).cpu_s
        return total

    def mark(self, phase: str | None) -> None:
        """Close the load record of `phase` (if any) and start the next one.

        Foreign load is CPU used on this machine by anything but the bench's
        own processes: another job running alongside makes the figures noisy.
        """
        now, times, ours = time.monotonic(), procs.cpu_times(), self.ours_cpu_s()
        if phase is not None and self._mark is not None:
            t0, times0, ours0 = self._mark
            wall = now - t0
            busy = times["cpu"][0] - times0["cpu"][0]
            steal = times["cpu"][1] - times0["cpu"][1]
            foreign = max(0.0, busy - (ours - ours0)) / wall if wall else 0.0
            rec = {
                "phase": phase,
                "seconds": wall,
                "foreign_cores": foreign,
                "steal_cores": steal / wall if wall else 0.0,
            }
            self.load.append(rec)
            warn = "  <-- the machine was not quiet" if foreign > 0.1 else ""
            say(
                f"  load during {phase}: foreign {foreign:.2f} cores, steal "
                f"{rec['steal_cores']:.2f} cores{warn}"
            )
        self._mark = (now, times, ours)

    def active(self, *, translate: bool = True, extra: bool = True) -> list[System]:
        out = []
        for s in self.systems.values():
            if s.skip:
                continue
            if not translate and s.name.endswith("translate"):
                continue
            if not extra and s.name in ("coderouterd+malloc", "coderouterd@info"):
                continue
            out.append(s)
        return out

    def figure(  # noqa: PLR0917 - one row of the targets table, in its column order
        self, figure: str, system: str, value: str, target: str, ratio: str, verdict: str
    ) -> None:
        row = dict(
            figure=figure, system=system, value=value, target=target, ratio=ratio, verdict=verdict
        )
        self.figures.append(row)
        say(f"  {verdict:<5} {figure} [{system}]: {value}; ratio {ratio}; target {target}")


# ---------------------------------------------------------------- start-up


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CODEROUTERD_", "MALLOC_"))
        and k not in ("NOTIFY_SOCKET", "PYTHONPATH")
    }
    env.update(extra or {})
    return env


def crd_env(ctx: Ctx, extra: dict[str, str] | None = None) -> dict[str, str]:
    return child_env(
        {**({"PYTHONPATH": ctx.pythonpath} if ctx.pythonpath else {}), **(extra or {})}
    )


def crd_config(ctx: Ctx, name: str, mock: str) -> Path:
    lines = [
        "server:",
        "  host: 127.0.0.1",
        "  port: 0",
        f"  state_dir: {ctx.workdir}/{name}-state",
        f"  control_socket: {ctx.workdir}/{name}.sock",
        "providers:",
    ]
    for route, prefix in ROUTES.items():
        lines += [
            f"  - {{name: a_{route}, kind: anthropic, base_url: '{mock}{prefix}', "
            "model: mock-model}",
            f"  - {{name: o_{route}, kind: openai_compat, base_url: '{mock}{prefix}/v1', "
            "model: mock-model}",
        ]
    lines += ["profiles:", "  - {name: bench, providers: [a_fast]}", "default_profile: bench"]
    path = ctx.workdir / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_crd(ctx: Ctx, name: str, mock: str, *, level: str, env: dict[str, str]) -> Proc:
    cfg = crd_config(ctx, name, mock)
    argv = [
        sys.executable,
        "-m",
        "coderouterd.cli",
        "serve",
        "--config",
        str(cfg),
        "--log-level",
        level,
    ]
    home = ctx.workdir / f"{name}-home"
    home.mkdir()
    proc = procs.start(
        name,
        argv,
        workdir=ctx.workdir,
        env=crd_env(ctx, {**env, "XDG_STATE_HOME": str(home), "XDG_CONFIG_HOME": str(home)}),
    )
    proc.extra["level"] = level
    ctx.procs.append(proc)
    return proc


def crd_port(ctx: Ctx, proc: Proc, sock: Path) -> int:
    """`server.started` carries the address, but it is an info line: at
    --log-level warning it is filtered out, so ask `ctl status` instead."""
    if "info" in proc.extra.get("level", "") and procs.wait_log_listen(proc, 20):
        return proc.port
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "coderouterd.cli",
                "ctl",
                "status",
                "--json",
                "--socket",
                str(sock),
            ],
            capture_output=True,
            timeout=10,
            check=False,
            env=crd_env(ctx),
            cwd=ctx.workdir,
        )
        if r.returncode == 0:
            listen = json.loads(r.stdout)["listen"]
            if listen:
                proc.port = int(listen.rsplit(":", 1)[1])
                return proc.port
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: no listen address from ctl status:\n{proc.tail()}")


def start_litellm(ctx: Ctx, mock: str) -> Proc | None:
    if "litellm" in ctx.skipped:  # --no-peer
        return None
    exe = PEER_VENV / "bin" / "litellm"
    cfg = PEER_VENV / "litellm.yaml"
    if not exe.exists() or not cfg.exists():
        ctx.skipped["litellm"] = "not installed (run bench/peer_litellm.sh to add it)"
        return None
    port = procs.free_port()
    env = child_env(
        {
            "BENCH_MOCK_URL": mock,
            "BENCH_MOCK_URL_PACE": mock + PACE,
            "BENCH_MOCK_URL_HOLD": mock + HOLD,
            # No network here: use the bundled model price map, send no telemetry.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MASTER_KEY": BENCH_KEY,
            "LITELLM_TELEMETRY": "False",
            "DISABLE_ADMIN_UI": "True",
            "HOME": str(ctx.workdir),
        }
    )
    proc = procs.start(
        "litellm",
        [
            str(exe),
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        workdir=ctx.workdir,
        env=env,
    )
    proc.port = port
    ctx.procs.append(proc)
    return proc


def start_all(ctx: Ctx) -> None:
    mock = procs.start(
        "mock",
        [
            sys.executable,
            str(BENCH / "mock_upstream.py"),
            "--max-seconds",
            str(ctx.counts.deadline_s + 120),
        ],
        workdir=ctx.workdir,
        env=child_env(),
    )
    ctx.procs.append(mock)
    procs.wait_port_line(mock, 10)
    litellm = start_litellm(ctx, mock.url)  # slowest to boot: start it first
    floor = procs.start(
        "floor",
        [
            sys.executable,
            str(BENCH / "floor_proxy.py"),
            "--upstream",
            mock.url,
            "--max-seconds",
            str(ctx.counts.deadline_s + 120),
        ],
        workdir=ctx.workdir,
        env=child_env(),
    )
    ctx.procs.append(floor)
    crds = {
        "coderouterd": start_crd(ctx, "crd", mock.url, level="warning", env={}),
        "coderouterd+malloc": start_crd(
            ctx, "crd-malloc", mock.url, level="warning", env=MALLOC_ENV
        ),
        "coderouterd@info": start_crd(ctx, "crd-info", mock.url, level="info", env={}),
    }
    procs.wait_port_line(floor, 10)
    ctx.systems["direct"] = System("direct", mock, mock.url, True, "the mock itself")
    ctx.systems["floor"] = System("floor", floor, floor.url, True, "bare aiohttp pass-through")
    for proc in crds.values():
        sock = ctx.workdir / f"{proc.name}.sock"
        crd_port(ctx, proc, sock)
        procs.wait_http(proc.url + "/healthz", 15, proc)
    crd = crds["coderouterd"]
    ctx.systems["coderouterd"] = System(
        "coderouterd", crd, crd.url, False, "Anthropic -> anthropic provider, --log-level warning"
    )
    ctx.systems["coderouterd+malloc"] = System(
        "coderouterd+malloc",
        crds["coderouterd+malloc"],
        crds["coderouterd+malloc"].url,
        False,
        " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()),
    )
    ctx.systems["coderouterd@info"] = System(
        "coderouterd@info",
        crds["coderouterd@info"],
        crds["coderouterd@info"].url,
        False,
        "--log-level info (one request.completed line per request, stderr to a file)",
    )
    ctx.systems["coderouterd-translate"] = System(
        "coderouterd-translate", crd, crd.url, False, "Anthropic -> openai_compat provider"
    )
    if litellm is not None:
        try:
            procs.wait_http(litellm.url + "/health/liveliness", min(150, ctx.left() - 60), litellm)
            ctx.systems["litellm"] = System(
                "litellm",
                litellm,
                litellm.url,
                False,
                "LiteLLM proxy, /v1/messages, anthropic provider; after each of its requests "
                "the runner waits until it is idle (it keeps working after it answers)",
                settle=True,
            )
        except RuntimeError as exc:
            ctx.skipped["litellm"] = f"did not start: {str(exc)[:300]}"
    ctx.results["rss_idle_kb"] = {
        s.name: procs.group_rss_kb(s.proc.pid)
        for s in ctx.systems.values()
        if s.name != "coderouterd-translate"
    }


async def probe(ctx: Ctx) -> None:
    """Every system must answer the bench request correctly before it is timed."""
    client = AioClient()
    try:
        for s in list(ctx.systems.values()):
            body = ctx.body(SIZES["1k"], False, s.model("fast"))
            try:
                _, status, data = await client.unary(s.url("fast"), body)
            except Exception as exc:
                status, data = 0, repr(exc).encode()
            reasons = _skip_reasons(data) if status == 503 else []
            if s.name == "coderouterd-translate" and reasons:
                s.skip = (
                    f"coderouterd answered 503, provider skipped with reason {', '.join(reasons)}:"
                    " Anthropic requests to an openai_compat provider are not routed by this "
                    "build"
                )
            elif status != 200:
                s.skip = f"probe answered {status}: {data[:300]!r}"
            else:
                sample = await client.stream(
                    s.url("pace"), ctx.body(SIZES["1k"], True, s.model("pace"))
                )
                if not sample.complete or len(sample.chunk_delays_ns) != 20:
                    s.skip = (
                        f"stream probe: status {sample.status}, "
                        f"{len(sample.chunk_delays_ns)} stamped deltas of 20"
                    )
            if s.skip:
                ctx.skipped[s.name] = s.skip
                say(f"  SKIP {s.name}: {s.skip}")
    finally:
        await client.close()


def _skip_reasons(body: bytes) -> list[str]:
    """Reasons like kind_not_supported from an all-providers-failed 503, if any."""
    try:
        attempts = json.loads(body)["error"].get("attempts") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return [
        a["reason"]
        for a in attempts
        if isinstance(a, dict) and str(a.get("reason", "")).endswith("_not_supported")
    ]


# ---------------------------------------------------------------- statistics


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def fmt_ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}"


_PIDS: dict[int, list[int]] = {}


def settle(s: System) -> None:
    """For a system with work after its answer, wait (untimed) until it is idle."""
    if s.settle:
        pids = _PIDS.setdefault(s.proc.pid, procs.descendants(s.proc.pid))
        s.settle_s += procs.wait_quiet(pids)


def pin_latency(ctx: Ctx) -> None:
    """All processes of a latency run on one core (the idlest): no cross-core wake-ups."""
    core = {procs.idlest_cores(ctx.cores)[0]}
    procs.pin_self(core)
    for p in ctx.procs:
        procs.pin(p.pid, core)


def pin_split(ctx: Ctx, sut: Proc | None, order: list[int]) -> None:
    """The system under test alone on one core; client and mock on the other."""
    own = {order[0]}
    other = {order[-1]}
    procs.pin_self(other)
    for p in ctx.procs:
        procs.pin(p.pid, own if (sut is not None and p is sut) else other)


def unpin(ctx: Ctx) -> None:
    everything = set(ctx.cores)
    procs.pin_self(everything)
    for p in ctx.procs:
        procs.pin(p.pid, everything)


# ---------------------------------------------------------------- latency


async def phase_latency(ctx: Ctx, size_key: str) -> None:
    c = ctx.counts
    size = SIZES[size_key]
    systems = ctx.active()
    pin_latency(ctx)
    clients = {s.name: AioClient() for s in systems}
    bodies = {s.name: ctx.body(size, False, s.model("fast")) for s in systems}
    urls = {s.name: s.url("fast") for s in systems}
    errors = dict.fromkeys(clients, 0)
    lat: dict[str, list[int]] = {s.name: [] for s in systems}
    added: dict[str, list[int]] = {s.name: [] for s in systems}
    try:
        for s in systems:
            for _ in range(c.lat_warm):
                await clients[s.name].unary(urls[s.name], bodies[s.name])
        before = {s.name: procs.cpu_sample(s.proc.pid) for s in systems}
        gc.collect()
        gc.disable()
        end = time.monotonic() + min(c.lat_cap_s, ctx.left() - 30)
        rounds = 0
        for r in range(c.lat_rounds):
            if time.monotonic() > end:
                break
            rnd: dict[str, list[int]] = {s.name: [] for s in systems}
            for sweep in range(c.lat_sweeps):
                k = (r * c.lat_sweeps + sweep) % len(systems)
                for s in systems[k:] + systems[:k]:
                    try:
                        ns, status, _ = await clients[s.name].unary(urls[s.name], bodies[s.name])
                    except Exception:
                        errors[s.name] += 1
                        continue
                    finally:
                        settle(s)
                    if status != 200:
                        errors[s.name] += 1
                        continue
                    rnd[s.name].append(ns)
            if not rnd["direct"]:
                continue
            base = statistics.median(rnd["direct"])
            for name, values in rnd.items():
                lat[name].extend(values)
                added[name].extend(v - base for v in values)
            rounds += 1
        gc.enable()
        after = {s.name: procs.cpu_sample(s.proc.pid) for s in systems}
    finally:
        gc.enable()
        for cl in clients.values():
            await cl.close()
    rows = {}
    for s in systems:
        n = len(lat[s.name])
        shared = s.name in ("direct",) or sum(1 for o in systems if o.proc is s.proc) > 1
        cpu = after[s.name].cpu_s - before[s.name].cpu_s
        flt = after[s.name].minflt - before[s.name].minflt
        rows[s.name] = {
            "n": n,
            "errors": errors[s.name],
            "lat_p50_ns": pct(lat[s.name], 50),
            "added_p50_ns": pct(added[s.name], 50),
            "added_p99_ns": pct(added[s.name], 99),
            # The mock serves every system: its counters are not per system.
            "cpu_us_per_req": None if shared else cpu / max(n, 1) * 1e6,
            "minflt_per_req": None if shared else flt / max(n, 1),
        }
    ctx.results[f"latency_{size_key}"] = {"rounds": rounds, "rows": rows}
    floor = rows["floor"]
    say(
        f"  {size_key}: {rounds} rounds x {c.lat_sweeps} sweeps; added latency ms p50/p99 "
        f"(ratio to floor):"
    )
    for name, row in rows.items():
        if name == "direct":
            say(f"    {name:<22} latency p50 {fmt_ms(row['lat_p50_ns'])} ms (the baseline)")
            continue
        say(
            f"    {name:<22} {fmt_ms(row['added_p50_ns'])} / {fmt_ms(row['added_p99_ns'])}"
            f"  ({ratio(row['added_p50_ns'], floor['added_p50_ns']):.2f}x / "
            f"{ratio(row['added_p99_ns'], floor['added_p99_ns']):.2f}x)"
            f"  cpu {_opt(row['cpu_us_per_req'], '.0f')} us/req"
            f"  faults {_opt(row['minflt_per_req'], '.1f')}/req  errors {row['errors']}"
        )
    crd = rows.get("coderouterd")
    if crd:
        r50 = ratio(crd["added_p50_ns"], floor["added_p50_ns"])
        ctx.figure(
            f"passthrough added latency p50, c=1, {size_key}",
            "coderouterd",
            f"{fmt_ms(crd['added_p50_ns'])} ms (p99 {fmt_ms(crd['added_p99_ns'])} ms); "
            f"floor {fmt_ms(floor['added_p50_ns'])} ms (p99 {fmt_ms(floor['added_p99_ns'])} ms)",
            f"<= {TARGET_PASSTHROUGH}x floor",
            f"{r50:.2f}x (p99 {ratio(crd['added_p99_ns'], floor['added_p99_ns']):.2f}x)",
            "PASS" if r50 <= TARGET_PASSTHROUGH else "FAIL",
        )
    if size_key == "80k":
        tr = rows.get("coderouterd-translate")
        if tr:
            r50 = ratio(tr["added_p50_ns"], floor["added_p50_ns"])
            ctx.figure(
                "translation added latency p50, c=1, 80k",
                "coderouterd-translate",
                f"{fmt_ms(tr['added_p50_ns'])} ms",
                f"<= {TARGET_TRANSLATION}x floor",
                f"{r50:.2f}x",
                "PASS" if r50 <= TARGET_TRANSLATION else "FAIL",
            )
        else:
            ctx.figure(
                "translation added latency p50, c=1, 80k",
                "coderouterd-translate",
                "-",
                f"<= {TARGET_TRANSLATION}x floor",
                "-",
                "SKIP",
            )


def _opt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


# ---------------------------------------------------------------- streams


async def phase_stream(ctx: Ctx) -> None:
    c = ctx.counts
    systems = ctx.active()
    pin_latency(ctx)
    clients = {s.name: AioClient() for s in systems}
    bodies = {s.name: ctx.body(SIZES["80k"], True, s.model("pace")) for s in systems}
    urls = {s.name: s.url("pace") for s in systems}
    ttft: dict[str, list[int]] = {s.name: [] for s in systems}
    chunk: dict[str, list[int]] = {s.name: [] for s in systems}
    add_ttft: dict[str, list[int]] = {s.name: [] for s in systems}
    add_chunk: dict[str, list[int]] = {s.name: [] for s in systems}
    bad = dict.fromkeys(clients, 0)
    try:
        for s in systems:
            for _ in range(3):
                await clients[s.name].stream(urls[s.name], bodies[s.name])
        gc.collect()
        gc.disable()
        end = time.monotonic() + min(c.stream_cap_s, ctx.left() - 30)
        rounds = 0
        for r in range(c.stream_rounds):
            if time.monotonic() > end:
                break
            rt: dict[str, list[int]] = {s.name: [] for s in systems}
            rc: dict[str, list[int]] = {s.name: [] for s in systems}
            for sweep in range(c.stream_sweeps):
                k = (r * c.stream_sweeps + sweep) % len(systems)
                for s in systems[k:] + systems[:k]:
                    try:
                        smp = await clients[s.name].stream(urls[s.name], bodies[s.name])
                    except Exception:
                        bad[s.name] += 1
                        continue
                    finally:
                        settle(s)
                    if smp.status != 200 or not smp.complete or smp.ttft_ns < 0:
                        bad[s.name] += 1
                        continue
                    rt[s.name].append(smp.ttft_ns)
                    rc[s.name].extend(smp.chunk_delays_ns)
            if not rt["direct"]:
                continue
            bt, bc = statistics.median(rt["direct"]), statistics.median(rc["direct"])
            for name, values in rt.items():
                ttft[name].extend(values)
                chunk[name].extend(rc[name])
                add_ttft[name].extend(v - bt for v in values)
                add_chunk[name].extend(v - bc for v in rc[name])
            rounds += 1
    finally:
        gc.enable()
        for cl in clients.values():
            await cl.close()
    rows = {
        s.name: {
            "streams": len(ttft[s.name]),
            "bad": bad[s.name],
            "ttft_p50_ns": pct(ttft[s.name], 50),
            "chunk_p50_ns": pct(chunk[s.name], 50),
            "chunk_p99_ns": pct(chunk[s.name], 99),
            "added_ttft_p50_ns": pct(add_ttft[s.name], 50),
            "added_ttft_p99_ns": pct(add_ttft[s.name], 99),
            "added_chunk_p50_ns": pct(add_chunk[s.name], 50),
            "added_chunk_p99_ns": pct(add_chunk[s.name], 99),
        }
        for s in systems
    }
    ctx.results["stream"] = {"rounds": rounds, "rows": rows}
    floor = rows["floor"]
    say(f"  {rounds} rounds x {c.stream_sweeps} streams (80k body, 20 deltas 1 ms apart):")
    for name, row in rows.items():
        say(
            f"    {name:<22} ttft added p50/p99 {fmt_ms(row['added_ttft_p50_ns'])}/"
            f"{fmt_ms(row['added_ttft_p99_ns'])} ms  chunk added p50/p99 "
            f"{fmt_ms(row['added_chunk_p50_ns'])}/{fmt_ms(row['added_chunk_p99_ns'])} ms  "
            f"(raw chunk p50 {fmt_ms(row['chunk_p50_ns'])} ms)  bad {row['bad']}"
        )
    crd = rows.get("coderouterd")
    if crd:
        v = crd["added_chunk_p50_ns"] / 1e6
        ctx.figure(
            "added per-chunk latency p50 (streaming)",
            "coderouterd",
            f"{v:.3f} ms (p99 {fmt_ms(crd['added_chunk_p99_ns'])} ms); floor "
            f"{fmt_ms(floor['added_chunk_p50_ns'])} ms",
            f"<= {TARGET_CHUNK_MS} ms",
            f"{ratio(crd['added_chunk_p50_ns'], floor['added_chunk_p50_ns']):.2f}x floor",
            "PASS" if v <= TARGET_CHUNK_MS else "FAIL",
        )
        ctx.figure(
            "added time-to-first-token p50 (streaming, 80k)",
            "coderouterd",
            f"{fmt_ms(crd['added_ttft_p50_ns'])} ms (p99 "
            f"{fmt_ms(crd['added_ttft_p99_ns'])} ms); floor "
            f"{fmt_ms(floor['added_ttft_p50_ns'])} ms",
            "report",
            f"{ratio(crd['added_ttft_p50_ns'], floor['added_ttft_p50_ns']):.2f}x floor",
            "INFO",
        )


# ---------------------------------------------------------------- throughput


async def phase_throughput(ctx: Ctx) -> None:
    """Short interleaved rounds; the ratio to the floor is the median of per-round ratios,
    so a slow spell of the VM hits both systems of a round alike."""
    c = ctx.counts
    systems = ctx.active(translate=False)
    body = {s.name: ctx.body(SIZES["80k"], False, s.model("fast")) for s in systems}
    reqs = {s.name: [build_request(s.url("fast"), body[s.name])] for s in systems}
    rates: dict[str, list[float]] = {s.name: [] for s in systems}
    done = dict.fromkeys(rates, 0)
    secs = dict.fromkeys(rates, 0.0)
    failed = dict.fromkeys(rates, 0)
    cpu = dict.fromkeys(rates, 0.0)
    client_cpu = dict.fromkeys(rates, 0.0)
    per_round = c.tput_count // c.tput_rounds
    rounds = 0
    for r in range(c.tput_rounds):
        if ctx.left() < 60:
            break
        k = r % len(systems)
        order = procs.idlest_cores(ctx.cores, 0.1)
        for s in systems[k:] + systems[:k]:
            pin_split(ctx, None if s.name == "direct" else s.proc, order)
            client = RawClient(s.url("fast"), 32)
            try:
                await client.run(reqs[s.name], 64, deadline=time.monotonic() + 5)  # warm
                before = procs.cpu_sample(s.proc.pid)
                me = time.process_time()
                gc.disable()
                ok, bad, sec = await client.run(
                    reqs[s.name], per_round, deadline=time.monotonic() + c.tput_cap_s
                )
                gc.enable()
                client_cpu[s.name] += time.process_time() - me
                cpu[s.name] += procs.cpu_sample(s.proc.pid).cpu_s - before.cpu_s
            finally:
                gc.enable()
                client.close()
            done[s.name] += ok
            failed[s.name] += bad
            secs[s.name] += sec
            rates[s.name].append(ok / sec if sec else 0.0)
        rounds += 1
    unpin(ctx)
    rows = {}
    for s in systems:
        rows[s.name] = {
            "requests": done[s.name],
            "failed": failed[s.name],
            "rps": statistics.median(rates[s.name]) if rates[s.name] else 0.0,
            "rps_min": min(rates[s.name], default=0.0),
            "rps_max": max(rates[s.name], default=0.0),
            "sut_core_busy": cpu[s.name] / secs[s.name] if secs[s.name] else 0.0,
            "client_core_busy": client_cpu[s.name] / secs[s.name] if secs[s.name] else 0.0,
            "cpu_us_per_req": cpu[s.name] / max(done[s.name], 1) * 1e6,
            "ratio_to_floor": statistics.median(
                [ratio(a, b) for a, b in zip(rates[s.name], rates.get("floor", []), strict=False)]
            )
            if rates.get("floor")
            else float("nan"),
        }
    ctx.results["throughput"] = {"rounds": rounds, "rows": rows}
    say(f"  concurrency 32, 80k bodies, {rounds} rounds; system under test alone on one core:")
    for name, row in rows.items():
        say(
            f"    {name:<22} {row['rps']:7.0f} req/s (rounds {row['rps_min']:.0f}-"
            f"{row['rps_max']:.0f})  {row['ratio_to_floor']:.2f}x floor  "
            f"{row['cpu_us_per_req']:6.0f} us cpu/req  its core busy {row['sut_core_busy']:.0%}  "
            f"runner {row['client_core_busy']:.0%}  failed {row['failed']}"
        )
    crd, floor = rows.get("coderouterd"), rows.get("floor")
    if crd and floor:
        r = crd["ratio_to_floor"]
        ctx.figure(
            "throughput per core, c=32, 80k",
            "coderouterd",
            f"{crd['rps']:.0f} req/s; floor {floor['rps']:.0f} req/s (medians of {rounds} rounds)",
            f">= {TARGET_THROUGHPUT}x floor",
            f"{r:.2f}x (median of per-round ratios)",
            "PASS" if r >= TARGET_THROUGHPUT else "FAIL",
        )


# ---------------------------------------------------------------- memory


async def phase_drift(ctx: Ctx, s: System) -> None:
    c = ctx.counts
    mix = [
        build_request(s.url("fast"), ctx.body(SIZES["80k"], False, s.model("fast"))),
        build_request(s.url("fast"), ctx.body(SIZES["200k"], False, s.model("fast"))),
        build_request(s.url("fast"), ctx.body(SIZES["1k"], False, s.model("fast"))),
        build_request(s.url("fast"), ctx.body(SIZES["80k"], True, s.model("fast"))),
        build_request(s.url("fast"), ctx.body(SIZES["80k"], False, s.model("fast"))),
    ]
    client = RawClient(s.url("fast"), 8)
    count = c.drift_count
    cap = 120.0
    if s.name == "litellm":
        # Some forty times slower: a bounded look, not 10,000 requests.
        count, cap = min(count, 1000), 12.0 if ctx.quick else 25.0
    trend = []
    try:
        await client.run(
            mix, c.drift_warm if s.name != "litellm" else 50, deadline=time.monotonic() + 30
        )
        rss0 = procs.group_rss_kb(s.proc.pid)
        sent = fails = 0
        step = max(count // 10, 1)
        end = time.monotonic() + min(cap, ctx.left() - 30)
        while sent < count and time.monotonic() < end:
            ok, bad, _ = await client.run(mix, step, deadline=end)
            sent += ok + bad
            fails += bad
            trend.append(procs.group_rss_kb(s.proc.pid))
    finally:
        client.close()
    growth = (trend[-1] - rss0) / 1024 if trend else float("nan")
    ctx.results.setdefault("drift", {})[s.name] = {
        "requests": sent,
        "failed": fails,
        "rss_before_kb": rss0,
        "trend_kb": trend,
        "growth_mb": growth,
    }
    say(
        f"    {s.name:<22} {sent} requests ({fails} failed): RSS {rss0 / 1024:.1f} -> "
        f"{trend[-1] / 1024 if trend else float('nan'):.1f} MB, growth {growth:+.2f} MB; "
        f"trend {' '.join(f'{t / 1024:.1f}' for t in trend)}"
    )


async def phase_open_streams(ctx: Ctx, s: System) -> None:
    c = ctx.counts
    n = c.open_streams
    body = ctx.body(SIZES["80k"], True, s.model("hold"))
    url = s.url("hold")
    client = AioClient(connections=n + 8)
    opened = 0
    all_open = asyncio.Event()
    refused: dict[str, int] = {}

    async def one() -> None:
        nonlocal opened
        try:
            await read_one()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            key = type(exc).__name__
            refused[key] = refused.get(key, 0) + 1

    async def read_one() -> None:
        nonlocal opened
        async with client.session.post(url, data=body, headers=HEADERS) as r:
            if r.status != 200:
                key = f"http_{r.status}"
                refused[key] = refused.get(key, 0) + 1
                return
            async for data in r.content.iter_any():
                if b"@" in data:
                    opened += 1
                    if opened == n:
                        all_open.set()
                    break
            async for _ in r.content.iter_any():
                pass

    budget = min(c.open_cap_s, ctx.left() - 30)
    if budget < 5:
        ctx.skipped[f"open streams, {s.name}"] = f"global deadline: {budget:.0f} s left"
        say(f"    SKIP {s.name}: global deadline")
        await client.close()
        return
    rss0 = procs.group_rss_kb(s.proc.pid)
    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    peak = 0
    t0 = time.monotonic()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_open.wait(), budget)
        open_s = time.monotonic() - t0
        for _ in range(5):
            peak = max(peak, procs.group_rss_kb(s.proc.pid))
            await asyncio.sleep(0.1)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    await asyncio.sleep(1.5)
    after = procs.group_rss_kb(s.proc.pid)
    inflight = None
    if s.name.startswith("coderouterd"):
        inflight = crd_inflight(ctx, s.proc)
    ctx.results.setdefault("open_streams", {})[s.name] = {
        "opened": opened,
        "seconds_to_open": open_s,
        "rss_before_kb": rss0,
        "rss_open_kb": peak,
        "rss_after_kb": after,
        "in_flight_after": inflight,
        "refused": refused,
    }
    say(
        f"    {s.name:<22} {opened}/{n} streams open in {open_s:.1f}s: RSS {rss0 / 1024:.1f} -> "
        f"{peak / 1024:.1f} MB open -> {after / 1024:.1f} MB after the clients left"
        + (f"; in flight after: {inflight}" if inflight is not None else "")
        + (f"; refused: {refused}" if refused else "")
    )


def crd_inflight(ctx: Ctx, proc: Proc) -> int | None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "coderouterd.cli",
            "ctl",
            "status",
            "--json",
            "--socket",
            str(ctx.workdir / f"{proc.name}.sock"),
        ],
        capture_output=True,
        timeout=10,
        check=False,
        env=crd_env(ctx),
        cwd=ctx.workdir,
    )
    if r.returncode != 0:
        return None
    return len(json.loads(r.stdout).get("in_flight", []))


async def phase_memory(ctx: Ctx) -> None:
    unpin(ctx)
    # coderouterd+malloc too: what the malloc settings cost in memory.
    systems = [
        s for s in ctx.active(translate=False) if s.name not in ("direct", "coderouterd@info")
    ]
    say(f"  {ctx.counts.open_streams} concurrent open streams (80k bodies):")
    for s in systems:
        if ctx.left() < 25:
            break
        await phase_open_streams(ctx, s)
    say(
        f"  drift: {ctx.counts.drift_count} requests (80k, 200k, 1k, 80k stream, 80k), "
        "concurrency 8, after a warm-up:"
    )
    for s in systems:
        if ctx.left() < 25:
            break
        await phase_drift(ctx, s)
    idle = ctx.results["rss_idle_kb"]
    crd_open = ctx.results.get("open_streams", {}).get("coderouterd")
    floor_open = ctx.results.get("open_streams", {}).get("floor")
    ctx.figure(
        "RSS idle (fresh process)",
        "coderouterd",
        f"{idle['coderouterd'] / 1024:.1f} MB; floor {idle['floor'] / 1024:.1f} MB",
        "report",
        f"{ratio(idle['coderouterd'], idle['floor']):.2f}x floor",
        "INFO",
    )
    if crd_open:
        mb = crd_open["rss_open_kb"] / 1024
        ok = mb <= TARGET_RSS_MB and crd_open["opened"] == ctx.counts.open_streams
        ctx.figure(
            f"RSS with {ctx.counts.open_streams} open streams",
            "coderouterd",
            f"{mb:.1f} MB ({crd_open['opened']} open); floor "
            f"{floor_open['rss_open_kb'] / 1024 if floor_open else float('nan'):.1f} MB",
            f"<= {TARGET_RSS_MB} MB",
            f"{ratio(crd_open['rss_open_kb'], floor_open['rss_open_kb']):.2f}x floor"
            if floor_open
            else "-",
            "PASS" if ok else "FAIL",
        )
    drift = ctx.results.get("drift", {}).get("coderouterd")
    if drift:
        g = drift["growth_mb"]
        full = drift["requests"] >= 10_000
        ctx.figure(
            f"RSS growth over {drift['requests']} requests",
            "coderouterd",
            f"{g:+.2f} MB",
            f"< {TARGET_DRIFT_MB} MB over 10,000",
            "-",
            ("PASS" if g < TARGET_DRIFT_MB else "FAIL")
            if full
            else ("PASS*" if g < TARGET_DRIFT_MB * drift["requests"] / 10_000 else "FAIL"),
        )


# ---------------------------------------------------------------- peer and recording


# A `state` setting that turns request recording off; none exists yet. When one
# does, add a "coderouterd-norec" daemon with it in start_all and compare its
# throughput with coderouterd's in phase_throughput.
RECORDING_SWITCHES = ("enabled", "record", "recording")


def recording_figure(ctx: Ctx) -> None:
    # Asked of the measured source, which may not be the one this process imports.
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from coderouterd.config import model as m\n"
            "print(' '.join(m.Config.__struct_fields__))\n"
            "s = getattr(m, 'StateConfig', None)\n"
            "print(' '.join(s.__struct_fields__) if s else '')",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=crd_env(ctx),
        cwd=ctx.workdir,
    )
    lines = [*r.stdout.splitlines(), "", ""]
    top, state = set(lines[0].split()), lines[1].split()
    if "state" not in top:
        reason = "this build records nothing: coderouterd.config.model has no `state` setting"
    else:
        switch = [f for f in state if f in RECORDING_SWITCHES]
        reason = (
            f"`state` exists ({', '.join(state)}) but has no setting that turns recording "
            "off, so there is no 'off' to compare with"
            if not switch
            else f"state.{switch[0]} exists: wire it into bench/run.py (RECORDING_SWITCHES)"
        )
    ctx.figure(
        "recording on vs off throughput",
        "coderouterd",
        "-",
        f">= {TARGET_RECORDING}x off",
        "-",
        "SKIP",
    )
    ctx.skipped["recording on vs off"] = reason
    say(f"  SKIP recording on vs off: {reason}")


def peer_figures(ctx: Ctx) -> None:
    if "litellm" not in ctx.systems or ctx.systems["litellm"].skip:
        ctx.figure("peer gateway ratios", "litellm", "-", "report", "-", "SKIP")
        return
    lat = ctx.results.get("latency_80k", {}).get("rows", {})
    if "litellm" in lat and "coderouterd" in lat:
        ll, crd = lat["litellm"], lat["coderouterd"]
        ctx.figure(
            "added latency p50, c=1, 80k: LiteLLM / coderouterd",
            "litellm",
            f"{fmt_ms(ll['added_p50_ns'])} ms vs {fmt_ms(crd['added_p50_ns'])} ms",
            "report",
            f"{ratio(ll['added_p50_ns'], crd['added_p50_ns']):.1f}x",
            "INFO",
        )
    st = ctx.results.get("stream", {}).get("rows", {})
    if "litellm" in st and "coderouterd" in st:
        ll, crd = st["litellm"], st["coderouterd"]
        ctx.figure(
            "added per-chunk p50: LiteLLM / coderouterd",
            "litellm",
            f"{fmt_ms(ll['added_chunk_p50_ns'])} ms vs {fmt_ms(crd['added_chunk_p50_ns'])} ms",
            "report",
            f"{ratio(ll['added_chunk_p50_ns'], crd['added_chunk_p50_ns']):.1f}x",
            "INFO",
        )
    tp = ctx.results.get("throughput", {}).get("rows", {})
    if "litellm" in tp and "coderouterd" in tp:
        ctx.figure(
            "throughput per core: coderouterd / LiteLLM",
            "litellm",
            f"{tp['litellm']['rps']:.0f} req/s vs {tp['coderouterd']['rps']:.0f} req/s",
            "report",
            f"{ratio(tp['coderouterd']['rps'], tp['litellm']['rps']):.1f}x",
            "INFO",
        )
    op = ctx.results.get("open_streams", {})
    if "litellm" in op and "coderouterd" in op:
        ctx.figure(
            "RSS with open streams: LiteLLM / coderouterd",
            "litellm",
            f"{op['litellm']['rss_open_kb'] / 1024:.0f} MB vs "
            f"{op['coderouterd']['rss_open_kb'] / 1024:.0f} MB",
            "report",
            f"{ratio(op['litellm']['rss_open_kb'], op['coderouterd']['rss_open_kb']):.1f}x",
            "INFO",
        )


# ---------------------------------------------------------------- report


def versions() -> dict[str, str]:
    import importlib.metadata as md  # noqa: PLC0415

    out = {"python": platform.python_version()}
    for pkg in ("coderouterd", "aiohttp", "msgspec", "structlog", "uvloop"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    py = PEER_VENV / "bin" / "python"
    if py.exists():
        r = subprocess.run(
            [
                str(py),
                "-c",
                "import importlib.metadata as m;print(m.version('litellm'))",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        out["litellm (peer)"] = r.stdout.strip() or "?"
    return out


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{int(mem) / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "glibc": " ".join(platform.libc_ver()),
    }


def write_results(ctx: Ctx, path: Path, started: float, argv: list[str]) -> None:
    r = ctx.results
    L: list[str] = []
    w = L.append
    w("# coderouterd bench results\n")
    w(
        f"Written by `python bench/run.py{' --quick' if ctx.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} in {time.monotonic() - started:.0f} s. "
        "How to read it: [README.md](README.md).\n"
    )
    if ctx.quick:
        w("**Quick run**: few samples; use the full run for figures to quote.\n")
    w("## Machine and versions\n")
    w("| | |\n|---|---|")
    for k, v in {**machine(), **versions(), "measured coderouterd": ctx.source}.items():
        w(f"| {k} | {v} |")
    w("")
    w("## Targets\n")
    w("| verdict | figure | system | measured | ratio | target |\n|---|---|---|---|---|---|")
    for f in ctx.figures:
        w(
            f"| **{f['verdict']}** | {f['figure']} | {f['system']} | {f['value']} | {f['ratio']} "
            f"| {f['target']} |"
        )
    w("")
    w("PASS* = within the target scaled to the requests actually sent (quick run).\n")
    if ctx.skipped:
        w("## Skipped\n")
        for k, v in ctx.skipped.items():
            w(f"- **{k}**: {v}")
        w("")
    w("## Systems\n")
    w("| system | what |\n|---|---|")
    for s in ctx.systems.values():
        w(f"| {s.name} | {s.note}{' (skipped)' if s.skip else ''} |")
    w("")
    for key in ("1k", "80k", "200k"):
        lat = r.get(f"latency_{key}")
        if not lat:
            continue
        rows = lat["rows"]
        floor = rows["floor"]
        w(
            f"## Added latency, non-streaming, concurrency 1, {key} body "
            f"({len(make_body(SIZES[key]))} bytes)\n"
        )
        w(
            f"{lat['rounds']} interleaved rounds of {ctx.counts.lat_sweeps} sweeps; all processes "
            "on one core. Added = latency through the system minus the median direct latency "
            "of the same round.\n"
        )
        w(
            "| system | n | latency p50 ms | added p50 ms | added p99 ms | p50 / floor | "
            "p99 / floor | CPU us/req | minor faults/req | errors |"
        )
        w("|---|---|---|---|---|---|---|---|---|---|")
        for name, row in rows.items():
            if name == "direct":
                cells = ["-"] * 4
            else:
                cells = [
                    fmt_ms(row["added_p50_ns"]),
                    fmt_ms(row["added_p99_ns"]),
                    f"{ratio(row['added_p50_ns'], floor['added_p50_ns']):.2f}",
                    f"{ratio(row['added_p99_ns'], floor['added_p99_ns']):.2f}",
                ]
            w(
                f"| {name} | {row['n']} | {fmt_ms(row['lat_p50_ns'])} | {' | '.join(cells)} | "
                f"{_opt(row['cpu_us_per_req'], '.0f')} | {_opt(row['minflt_per_req'], '.1f')} | "
                f"{row['errors']} |"
            )
        w("")
    st = r.get("stream")
    if st:
        w("## Streaming, concurrency 1, 80k body, 20 deltas 1 ms apart\n")
        w(
            f"{st['rounds']} interleaved rounds of {ctx.counts.stream_sweeps} streams per system. "
            "Per-chunk delay = arrival at the client minus the mock's CLOCK_MONOTONIC stamp in "
            "the delta; added = minus the round's direct median.\n"
        )
        w(
            "| system | streams | TTFT p50 ms | added TTFT p50 ms | added TTFT p99 ms | "
            "chunk delay p50 ms | added chunk p50 ms | added chunk p99 ms | bad |"
        )
        w("|---|---|---|---|---|---|---|---|---|")
        for name, row in st["rows"].items():
            w(
                f"| {name} | {row['streams']} | {fmt_ms(row['ttft_p50_ns'])} | "
                f"{fmt_ms(row['added_ttft_p50_ns'])} | {fmt_ms(row['added_ttft_p99_ns'])} | "
                f"{fmt_ms(row['chunk_p50_ns'])} | {fmt_ms(row['added_chunk_p50_ns'])} | "
                f"{fmt_ms(row['added_chunk_p99_ns'])} | {row['bad']} |"
            )
        w("")
    tpr = r.get("throughput")
    if tpr:
        tp = tpr["rows"]
        w("## Throughput per core, concurrency 32, 80k non-streaming\n")
        w(
            f"{tpr['rounds']} interleaved rounds of "
            f"{ctx.counts.tput_count // ctx.counts.tput_rounds} "
            "requests per system. The system under test alone on one core; the load generator "
            "(raw asyncio client) and the mock on the other. req/s is the median over rounds; "
            "the ratio is the median of per-round ratios. `direct` is the ceiling of client + "
            "mock.\n"
        )
        w(
            "| system | requests | req/s (median) | min-max | / floor | CPU us/req | "
            "its core busy | runner core busy | failed |"
        )
        w("|---|---|---|---|---|---|---|---|---|")
        for name, row in tp.items():
            w(
                f"| {name} | {row['requests']} | {row['rps']:.0f} | {row['rps_min']:.0f}-"
                f"{row['rps_max']:.0f} | {row['ratio_to_floor']:.2f} | "
                f"{row['cpu_us_per_req']:.0f} | "
                f"{row['sut_core_busy']:.0%} | {row['client_core_busy']:.0%} | {row['failed']} |"
            )
        w("")
    w("## Memory (VmRSS)\n")
    idle = r.get("rss_idle_kb", {})
    dr = r.get("drift", {})
    op = r.get("open_streams", {})
    w(
        "| system | idle MB | before drift MB | after drift MB | growth MB (requests) | "
        "open streams MB | after streams MB | in flight after |"
    )
    w("|---|---|---|---|---|---|---|---|")
    for name, kb in idle.items():
        if name == "direct":
            continue
        d, o = dr.get(name), op.get(name)
        cells = [f"{kb / 1024:.1f}"]
        if d:
            last = d["trend_kb"][-1] / 1024 if d["trend_kb"] else float("nan")
            cells += [
                f"{d['rss_before_kb'] / 1024:.1f}",
                f"{last:.1f}",
                f"{d['growth_mb']:+.2f} ({d['requests']})",
            ]
        else:
            cells += ["-"] * 3
        if o:
            flight = o["in_flight_after"]
            cells += [
                f"{o['rss_open_kb'] / 1024:.1f} ({o['opened']} open)",
                f"{o['rss_after_kb'] / 1024:.1f}",
                "-" if flight is None else str(flight),
            ]
        else:
            cells += ["-"] * 3
        w(f"| {name} | {' | '.join(cells)} |")
    w("")
    if dr:
        w("RSS trend during the drift run (MB, every tenth of the requests):\n")
        for name, d in dr.items():
            w(f"- {name}: {' '.join(f'{t / 1024:.1f}' for t in d['trend_kb'])}")
        w("")
    if ctx.load:
        w("## Machine load during the run\n")
        w(
            "CPU used by processes other than the bench's own (in cores), and time stolen by "
            "the hypervisor. Anything well above 0 means another job shared the machine and "
            "the figures of that phase are noisier than they should be.\n"
        )
        w("| phase | seconds | foreign load (cores) | steal (cores) |\n|---|---|---|---|")
        for rec in ctx.load:
            w(
                f"| {rec['phase']} | {rec['seconds']:.0f} | {rec['foreign_cores']:.2f} | "
                f"{rec['steal_cores']:.2f} |"
            )
        w("")
    w("## Method notes\n")
    w(f"- Bodies: {', '.join(f'{k}: {describe(make_body(v))}' for k, v in SIZES.items())}.")
    w(
        "- coderouterd runs with `--log-level warning` so that the per-request "
        "`request.completed` line is not part of the main figures; `coderouterd@info` is the "
        "same daemon at the default level, its stderr going to a file."
    )
    malloc = ", ".join(f"`{k}={v}`" for k, v in MALLOC_ENV.items())
    w(f"- `coderouterd+malloc` is the same daemon with {malloc}.")
    for note in ctx.notes:
        w(f"- {note}")
    w(f"- Command: `{' '.join(argv)}`")
    w("")
    path.write_text("\n".join(L))
    say(f"wrote {path}")


# ---------------------------------------------------------------- main


def kill_all(ctx: Ctx) -> None:
    for p in reversed(ctx.procs):
        procs.stop(p)


async def run(ctx: Ctx) -> None:
    say(
        "starting mock, floor, coderouterd x3"
        + ("" if "litellm" in ctx.skipped else ", litellm (if installed)")
        + " ..."
    )
    await asyncio.to_thread(start_all, ctx)
    for name, reason in ctx.skipped.items():
        say(f"  SKIP {name}: {reason}")
    say(
        "  "
        + ", ".join(f"{s.name}={s.proc.port}" for s in ctx.systems.values())
        + f" (started in {ctx.counts.deadline_s - ctx.left():.0f} s)"
    )
    await probe(ctx)
    phases: list[tuple[str, float, Callable[[], object]]] = [
        ("latency 1k", 20, lambda: phase_latency(ctx, "1k")),
        ("latency 80k", 20, lambda: phase_latency(ctx, "80k")),
        ("latency 200k", 20, lambda: phase_latency(ctx, "200k")),
        ("streaming", 20, lambda: phase_stream(ctx)),
        ("throughput", 40, lambda: phase_throughput(ctx)),
        ("memory", 30, lambda: phase_memory(ctx)),
    ]
    for name, need, fn in phases:
        if ctx.left() < need:
            ctx.skipped[name] = f"global deadline: {ctx.left():.0f} s left"
            say(f"SKIP {name}: deadline")
            continue
        say(f"== {name} ({ctx.left():.0f} s left)")
        ctx.mark(None)
        await fn()  # type: ignore[misc]
        ctx.mark(name)
    recording_figure(ctx)
    peer_figures(ctx)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, under ~2 minutes")
    ap.add_argument(
        "--out",
        type=Path,
        help="results file (default bench/RESULTS.md, bench/RESULTS.quick.md with --quick)",
    )
    ap.add_argument("--no-peer", action="store_true", help="do not start LiteLLM")
    ap.add_argument(
        "--rev",
        help="measure coderouterd as of this git revision (exported to a "
        "temp dir) instead of the working tree",
    )
    args = ap.parse_args()
    counts = QUICK if args.quick else FULL
    cores = sorted(os.sched_getaffinity(0))
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="crb-", dir="/tmp"))
    ctx = Ctx(counts, args.quick, workdir, started + counts.deadline_s, cores)
    if args.no_peer:
        ctx.skipped["litellm"] = "--no-peer"
    if args.rev:
        sha = procs.export_source(ROOT, args.rev, workdir / "src")
        ctx.pythonpath = str(workdir / "src")
        ctx.source = f"{args.rev} = {sha[:12]} (exported; working tree not used)"
    else:
        git = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        )
        ctx.source = f"working tree at {git.stdout.strip() or '?'}"
    if len(cores) < 2:
        ctx.notes.append("only one core available: throughput is not per core")
    out = args.out or BENCH / ("RESULTS.quick.md" if args.quick else "RESULTS.md")

    # Last resort if something hangs past the deadline: kill everything and exit.
    def watchdog() -> None:
        say("watchdog: deadline passed by 60 s; killing everything")
        kill_all(ctx)
        os._exit(3)

    timer = threading.Timer(counts.deadline_s + 60, watchdog)
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    status = 0
    try:
        asyncio.run(run(ctx))
    except KeyboardInterrupt:
        say("interrupted")
        status = 130
    except Exception as exc:
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        ctx.notes.append(f"the run failed: {exc!r}")
        status = 1
    finally:
        unpin(ctx)
        kill_all(ctx)
        timer.cancel()
    if ctx.figures or ctx.results:
        write_results(ctx, out, started, [Path(sys.argv[0]).name, *sys.argv[1:]])
    say("\nsummary:")
    for f in ctx.figures:
        say(f"  {f['verdict']:<5} {f['figure']} [{f['system']}]: {f['ratio']} ({f['target']})")
    say(f"total {time.monotonic() - started:.0f} s")
    if status == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"logs kept in {workdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
