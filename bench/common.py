"""What every part of the runner shares: counts, targets, the systems and the run context.

Also the small statistics helpers and core pinning used by every phase.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import procs
from bodies import make_body, make_conversation
from procs import Proc

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

PEER_VENV = BENCH / ".peer-venv"
PACE = "/pace/1000/n/20"  # per-chunk phase: 20 deltas, 1 ms apart
HOLD = "/pace/50000/n/400"  # open-streams phase: a stream that lasts 20 s
ROUTES = {"fast": "", "pace": PACE, "hold": HOLD}
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4194304", "MALLOC_TRIM_THRESHOLD_": "67108864"}

# Turns of each conversation the latency and throughput phases send (bodies.py).
TURNS = 16
TARGET_PASSTHROUGH = 1.3
TARGET_TRANSLATION = 2.0
TARGET_CHUNK_MS = 0.2
TARGET_THROUGHPUT = 0.7
TARGET_RECORDING = 0.9
TARGET_RSS_MB = 120
TARGET_DRIFT_MB = 10

# Systems measured in the throughput phase only.
THROUGHPUT_ONLY = ("coderouterd-norec",)
# The coderouterd daemon running the code of `--baseline REV`; not in the memory phase.
BASELINE = "coderouterd@base"
RECORDING_FIGURE = "recording on vs off throughput"


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
    # As long as the full run's: a daemon's bounded caches (SQLite's page
    # cache, the memos) are still filling 300 requests in, and the quick
    # run's scaled target (2 MB over 2000) read that as growth (+10-14 MB
    # over the first 40 %, flat after).
    drift_warm=1000,
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
    baseline_path: str | None = None  # the export of --baseline REV
    baseline_source: str | None = None  # "REV = sha" of --baseline
    only: list[str] | None = None  # the phases chosen by --only; None: every phase
    _bodies: dict[tuple[int, bool, str], bytes] = field(default_factory=dict)
    _conversations: dict[tuple[int, str, int], list[bytes]] = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def body(self, size: int, stream: bool, model: str) -> bytes:
        key = (size, stream, model)
        if key not in self._bodies:
            self._bodies[key] = make_body(size, stream=stream, model=model)
        return self._bodies[key]

    def conversation(self, size: int, model: str, seed: int = 0) -> list[bytes]:
        """The turns of one conversation averaging `size` bytes (bodies.make_conversation)."""
        key = (size, model, seed)
        if key not in self._conversations:
            self._conversations[key] = make_conversation(size, TURNS, seed=seed, model=model)
        return self._conversations[key]

    def ours_cpu_s(self) -> float:
        own = os.times()
        # Children it has waited for (`ctl status`, git) are the bench's too.
        total = own.user + own.system + own.children_user + own.children_system
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

    def active(
        self,
        *,
        translate: bool = True,
        extra: bool = True,
        throughput: bool = False,
        baseline: bool = True,
    ) -> list[System]:
        out = []
        for s in self.systems.values():
            if s.skip:
                continue
            if not throughput and s.name in THROUGHPUT_ONLY:
                continue
            if not baseline and s.name == BASELINE:
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


def opt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


_PIDS: dict[int, list[int]] = {}


def settle(s: System) -> None:
    """For a system with work after its answer, wait (untimed) until it is idle."""
    if s.settle:
        pids = _PIDS.setdefault(s.proc.pid, procs.descendants(s.proc.pid))
        s.settle_s += procs.wait_quiet(pids)


def timing_groups(systems: list[System]) -> list[list[System]]:
    """The systems as the latency phases time them, group after group, each
    in rounds of its own: the systems that settle (the peer) last, with
    `direct` for their baseline. Interleaved with the others, the peer left
    the shared core idle for ~15 ms a sweep and every request after such a
    pause ran slower (`direct` 0.25 -> 0.64 ms at 1 KB, the floor's added
    latency 0.39 -> 0.72 ms), so coderouterd's ratios to the floor moved from
    ~1.2x to ~1.5x merely because LiteLLM was installed. The peer's own
    figures are reports, ~15x coderouterd's, that the split does not blur."""
    main = [s for s in systems if not s.settle]
    peers = [s for s in systems if s.settle]
    if not peers:
        return [main]
    return [main, [s for s in main if s.name == "direct"] + peers]


def timed_rounds(
    ctx: Ctx, systems: list[System], rounds: int, sweeps: int, cap_s: float
) -> Iterator[tuple[int, list[list[System]]]]:
    """The rounds of a latency phase, group after group (timing_groups), each
    group within `cap_s`: the round's number and, sweep by sweep, its systems
    in the order they are sent to, a fresh shuffle each sweep (seeded: a rerun
    sends in the same orders).

    Shuffled, not rotated: rotation keeps every system after the same one, and
    what a system leaves to do after its answer (a daemon's replay records,
    its batched writes) then always lands in the same neighbour's requests.
    With rotation two daemons running the same code differed by 0.35 ms in
    added time-to-first-token, each taxed by its own fixed predecessor."""
    rng = random.Random(len(systems) * 7919 + rounds)
    for group in timing_groups(systems):
        end = time.monotonic() + min(cap_s, ctx.left() - 30)
        for r in range(rounds):
            if time.monotonic() > end:
                break
            yield r, [rng.sample(group, len(group)) for _ in range(sweeps)]


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
