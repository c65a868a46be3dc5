"""How much coderouterd adds over a bare aiohttp proxy (the floor) and a peer gateway.

    .venv/bin/python bench/run.py            # full run, ~5-10 min on 2 cores
    .venv/bin/python bench/run.py --quick    # under ~2 min, fewer samples

Starts a mock upstream, the floor proxy, coderouterd (four instances:
default, with replay records off, with glibc malloc tuning, and at
--log-level info) and, when bench/peer_litellm.sh has installed it, the
LiteLLM proxy; measures them interleaved round by round; prints every figure
with PASS/FAIL and writes bench/RESULTS.md (bench/RESULTS.quick.md for
--quick), keeping its hand-written `## Hot-path changes` section. See
bench/README.md.

The parts: common.py (counts, targets, the run context), systems.py
(start-up and config), phases_latency.py, phases_volume.py, report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import procs  # noqa: E402
from common import FULL, QUICK, ROOT, Ctx, say, unpin  # noqa: E402
from phases_latency import phase_latency, phase_stream  # noqa: E402
from phases_volume import phase_memory, phase_throughput  # noqa: E402
from report import peer_figures, recording_figure, write_results  # noqa: E402
from systems import log_problems, probe, start_all  # noqa: E402

# ---------------------------------------------------------------- main


def kill_all(ctx: Ctx) -> None:
    for p in reversed(ctx.procs):
        procs.stop(p)


async def run(ctx: Ctx) -> None:
    say(
        "starting mock, floor, coderouterd x4"
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
