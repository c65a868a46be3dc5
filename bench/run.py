"""How much coderouterd adds over a bare aiohttp proxy (the floor) and a peer gateway.

    .venv/bin/python bench/run.py            # full run, ~5-10 min on 2 cores
    .venv/bin/python bench/run.py --quick    # under ~2 min, fewer samples
    .venv/bin/python bench/run.py --baseline HEAD~3 --only throughput

Starts a mock upstream, the floor proxy, coderouterd (four instances:
default, with replay records off, with glibc malloc tuning, and at
--log-level info; a fifth running the code of --baseline REV) and, when
bench/peer_litellm.sh has installed it, the LiteLLM proxy; measures them
interleaved round by round; prints every figure with PASS/FAIL and writes
bench/RESULTS.md (bench/RESULTS.quick.md for --quick, bench/RESULTS.partial.md
for --only), keeping its hand-written `## Hot-path changes` section. See
bench/README.md.

The parts: common.py (counts, targets, the run context), systems.py
(start-up and config), daemon.py (`ctl status`, database rows),
phases_latency.py, phases_volume.py, baseline.py (against --baseline),
report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import procs  # noqa: E402
from baseline import print_comparison  # noqa: E402
from common import BASELINE, FULL, QUICK, ROOT, Ctx, say, unpin  # noqa: E402
from phases_latency import phase_latency, phase_stream  # noqa: E402
from phases_volume import phase_memory, phase_throughput  # noqa: E402
from report import peer_figures, recording_figure, write_results  # noqa: E402
from systems import log_problems, probe, start_all  # noqa: E402

# ---------------------------------------------------------------- main

# The phases in their order: name (for --only) -> (seconds it needs, what it runs).
PHASES: dict[str, tuple[float, Callable[[Ctx], Awaitable[None]]]] = {
    "latency-1k": (20, lambda ctx: phase_latency(ctx, "1k")),
    "latency-80k": (20, lambda ctx: phase_latency(ctx, "80k")),
    "latency-200k": (20, lambda ctx: phase_latency(ctx, "200k")),
    "streaming": (20, phase_stream),
    "throughput": (40, phase_throughput),
    "memory": (30, phase_memory),
}
# The phases coderouterd@base takes part in.
BASELINE_PHASES = ("latency-1k", "latency-80k", "latency-200k", "streaming", "throughput")


def kill_all(ctx: Ctx) -> None:
    for p in reversed(ctx.procs):
        procs.stop(p)


def starting_line(ctx: Ctx) -> str:
    names = ["mock", "floor", "coderouterd", "coderouterd-norec"]
    names += ["coderouterd+malloc", "coderouterd@info"]
    if ctx.baseline_source and BASELINE not in ctx.skipped:
        names.append(f"{BASELINE} ({ctx.baseline_source})")
    if "litellm" not in ctx.skipped:
        names.append("litellm (if installed)")
    return f"starting {', '.join(names)} ..."


async def run(ctx: Ctx) -> None:
    say(starting_line(ctx))
    await asyncio.to_thread(start_all, ctx)
    for name, reason in ctx.skipped.items():
        say(f"  SKIP {name}: {reason}")
    say(
        "  "
        + ", ".join(f"{s.name}={s.proc.port}" for s in ctx.systems.values())
        + f" (started in {ctx.counts.deadline_s - ctx.left():.0f} s)"
    )
    await probe(ctx)
    for name, (need, fn) in PHASES.items():
        if ctx.only is not None and name not in ctx.only:
            ctx.skipped[name] = "skipped by --only"
            say(f"SKIP {name}: --only")
            continue
        if ctx.left() < need:
            ctx.skipped[name] = f"global deadline: {ctx.left():.0f} s left"
            say(f"SKIP {name}: deadline")
            continue
        say(f"== {name} ({ctx.left():.0f} s left)")
        ctx.mark(None)
        await fn(ctx)
        ctx.mark(name)
    recording_figure(ctx)
    peer_figures(ctx)
    print_comparison(ctx)


def parse_only(text: str) -> list[str]:
    """Phase names from a comma-separated list; case, spaces, `_` and `-` do not matter."""
    plain = {re.sub(r"[^a-z0-9]", "", name): name for name in PHASES}
    chosen = set()
    for part in text.split(","):
        key = re.sub(r"[^a-z0-9]", "", part.lower())
        if key not in plain:
            raise ValueError(f"unknown phase {part.strip()!r}; valid: {', '.join(PHASES)}")
        chosen.add(plain[key])
    return [name for name in PHASES if name in chosen]


def export(ap: argparse.ArgumentParser, workdir: Path, flag: str, rev: str, dest: Path) -> str:
    """`procs.export_source`, or a usage error naming the revision."""
    try:
        return procs.export_source(ROOT, rev, dest)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        ap.error(f"{flag} {rev}: {(err or str(exc)).strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, under ~2 minutes")
    ap.add_argument(
        "--out",
        type=Path,
        help="results file (default bench/RESULTS.md; bench/RESULTS.quick.md with --quick, "
        "bench/RESULTS.partial.md with --only)",
    )
    ap.add_argument("--no-peer", action="store_true", help="do not start LiteLLM")
    ap.add_argument(
        "--rev",
        help="measure coderouterd as of this git revision (exported to a "
        "temp dir) instead of the working tree",
    )
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also run coderouterd as of this git revision (coderouterd@base) in the "
        "latency, streaming and throughput phases, and compare the measured one with it",
    )
    ap.add_argument(
        "--only",
        metavar="NAMES",
        help=f"run only these phases, comma-separated ({', '.join(PHASES)}); "
        "writes bench/RESULTS.partial.md unless --out is given",
    )
    args = ap.parse_args()
    try:
        only = parse_only(args.only) if args.only is not None else None
    except ValueError as exc:
        ap.error(f"--only: {exc}")
    if only is not None and len(only) == len(PHASES):
        only = None  # every phase: a full run
    out = args.out or BENCH / (
        "RESULTS.partial.md" if only else "RESULTS.quick.md" if args.quick else "RESULTS.md"
    )
    if only and out.resolve() == (BENCH / "RESULTS.md").resolve():
        ap.error("--only: a partial run does not overwrite bench/RESULTS.md; choose another --out")
    counts = QUICK if args.quick else FULL
    cores = sorted(os.sched_getaffinity(0))
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="crb-", dir="/tmp"))
    ctx = Ctx(counts, args.quick, workdir, started + counts.deadline_s, cores, only=only)
    if args.no_peer:
        ctx.skipped["litellm"] = "--no-peer"
    if args.rev:
        sha = export(ap, workdir, "--rev", args.rev, workdir / "src")
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
    if args.baseline:
        sha = export(ap, workdir, "--baseline", args.baseline, workdir / "base-src")
        ctx.baseline_path = str(workdir / "base-src")
        ctx.baseline_source = f"{args.baseline} = {sha}"
        if only and not set(only) & set(BASELINE_PHASES):
            ctx.skipped[BASELINE] = "takes part in none of the phases chosen by --only"
    if len(cores) < 2:
        ctx.notes.append("only one core available: throughput is not per core")

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
        log_problems(ctx)
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
