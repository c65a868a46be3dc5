"""The volume phases: throughput per core (recording on vs off too), open streams, RSS drift."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time

import procs
from bodies import SIZES
from common import (
    RECORDING_FIGURE,
    TARGET_DRIFT_MB,
    TARGET_RECORDING,
    TARGET_RSS_MB,
    TARGET_THROUGHPUT,
    Ctx,
    System,
    pin_split,
    ratio,
    say,
    unpin,
)
from daemon import crd_inflight, crd_rows
from load import HEADERS, AioClient, RawClient, build_request

# ---------------------------------------------------------------- throughput

CONNECTIONS = 32


async def phase_throughput(ctx: Ctx) -> None:
    """Short interleaved rounds; the ratio to the floor is the median of per-round ratios,
    so a slow spell of the VM hits both systems of a round alike."""
    c = ctx.counts
    systems = ctx.active(translate=False, throughput=True)
    # One conversation per connection: 32 agent sessions, each sending its turns in order.
    reqs = {
        s.name: [
            [
                build_request(s.url("fast"), b)
                for b in ctx.conversation(SIZES["80k"], s.model("fast"), n)
            ]
            for n in range(CONNECTIONS)
        ]
        for s in systems
    }
    recording = [s for s in systems if s.name in ("coderouterd", "coderouterd-norec")]
    rows_before = {s.name: await asyncio.to_thread(crd_rows, ctx, s.proc) for s in recording}
    rates: dict[str, list[float]] = {s.name: [] for s in systems}
    # The same, counting the CPU the system spent after its window (see below).
    rates_after: dict[str, list[float]] = {s.name: [] for s in systems}
    after_cpu = dict.fromkeys(rates, 0.0)
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
            client = RawClient(s.url("fast"), CONNECTIONS)
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
                window = procs.cpu_sample(s.proc.pid).cpu_s
                cpu[s.name] += window - before.cpu_s
            finally:
                gc.enable()
                client.close()
            # Work a system defers past its answers (coderouterd compresses replay
            # records and commits rows in the background): wait, untimed and still
            # pinned, until it is idle, so that this work neither escapes the system's
            # figures unseen nor lands on the next system's round.
            extra = 0.0
            if s.name != "direct":
                procs.wait_quiet(
                    procs.descendants(s.proc.pid), polls=20, interval=0.005, cap=c.tput_cap_s
                )
                extra = procs.cpu_sample(s.proc.pid).cpu_s - window
                after_cpu[s.name] += extra
            done[s.name] += ok
            failed[s.name] += bad
            secs[s.name] += sec
            rates[s.name].append(ok / sec if sec else 0.0)
            rates_after[s.name].append(ok / (sec + extra) if sec else 0.0)
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
            "after_cpu_us_per_req": after_cpu[s.name] / max(done[s.name], 1) * 1e6,
            "rps_with_after": statistics.median(rates_after[s.name]) if rates[s.name] else 0.0,
            "round_rps": rates[s.name],  # round by round, for ratios between any two systems
            "ratio_to_floor": statistics.median(
                [ratio(a, b) for a, b in zip(rates[s.name], rates.get("floor", []), strict=False)]
            )
            if rates.get("floor")
            else float("nan"),
        }
    ctx.results["throughput"] = {"rounds": rounds, "rows": rows}
    say(
        f"  concurrency {CONNECTIONS}, 80k conversations, {rounds} rounds; system under test alone on one core:"
    )
    for name, row in rows.items():
        say(
            f"    {name:<22} {row['rps']:7.0f} req/s (rounds {row['rps_min']:.0f}-"
            f"{row['rps_max']:.0f})  {row['ratio_to_floor']:.2f}x floor  "
            f"{row['cpu_us_per_req']:6.0f} us cpu/req (+{row['after_cpu_us_per_req']:.0f} after)  "
            f"its core busy {row['sut_core_busy']:.0%}  runner {row['client_core_busy']:.0%}  "
            f"failed {row['failed']}"
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
    rows_after = {s.name: await asyncio.to_thread(crd_rows, ctx, s.proc) for s in recording}
    recording_figures(ctx, rates, rates_after, rows_before, rows_after)


def recording_figures(
    ctx: Ctx,
    rates: dict[str, list[float]],
    rates_after: dict[str, list[float]],
    before: dict[str, dict[str, object]],
    after: dict[str, dict[str, object]],
) -> None:
    """coderouterd (replay records on, the default) against coderouterd-norec (off):
    the median of per-round ratios, and what each one's database holds."""
    on, off = "coderouterd", "coderouterd-norec"
    state = {}
    for name, rows in after.items():
        b = before.get(name, {})
        state[name] = {
            **rows,
            "replays_before": b.get("replays"),
            "requests_before": b.get("requests"),
        }
        say(
            f"  {name}: {rows.get('error') or rows['db']}: {rows.get('requests')} request rows, "
            f"{rows.get('replays')} replay rows (this phase: "
            f"+{_grew(rows, b, 'requests')} / +{_grew(rows, b, 'replays')}); writer: "
            f"replays dropped {rows.get('replays_dropped')}, too large "
            f"{rows.get('replays_too_large')}, rows dropped {rows.get('dropped')}"
        )
    ctx.results["recording"] = state
    if not rates.get(on) or not rates.get(off):
        reason = ctx.skipped.get(off, "coderouterd or coderouterd-norec not measured")
        ctx.figure(RECORDING_FIGURE, on, "-", f">= {TARGET_RECORDING}x off", "-", "SKIP")
        ctx.skipped.setdefault("recording on vs off", reason)
        return
    r = statistics.median([ratio(a, b) for a, b in zip(rates[on], rates[off], strict=True)])
    ra = statistics.median(
        [ratio(a, b) for a, b in zip(rates_after[on], rates_after[off], strict=True)]
    )
    replays_on, replays_off = state[on].get("replays"), state[off].get("replays")
    grew = {k: _delta(state[on], k) for k in ("requests", "replays")}
    # The comparison means something only if one daemon records every request of
    # the phase and the other records none: a recorder that drops records under
    # load would look cheaper than it is.
    valid = (
        isinstance(replays_on, int)
        and grew["replays"] is not None
        and grew["replays"] > 0
        and grew["replays"] == grew["requests"]
        and replays_off == 0
    )
    check = (
        f"{grew['replays']} replay rows written for {grew['requests']} requests (off: "
        f"{replays_off})"
        if valid
        else f"CHECK FAILED: this phase wrote {grew['replays']} replay rows for "
        f"{grew['requests']} requests, off {replays_off} "
        f"({state[on].get('error') or state[off].get('error') or 'expected all and 0'})"
    )
    ctx.figure(
        RECORDING_FIGURE,
        on,
        f"{statistics.median(rates[on]):.0f} req/s on; {statistics.median(rates[off]):.0f} "
        f"req/s off (medians of {len(rates[on])} rounds); {check}",
        f">= {TARGET_RECORDING}x off",
        f"{r:.2f}x (median of per-round ratios)",
        "PASS" if valid and r >= TARGET_RECORDING else "FAIL",
    )
    ctx.figure(
        "recording on vs off, counting CPU spent after the window",
        on,
        f"{statistics.median(rates_after[on]):.0f} req/s on; "
        f"{statistics.median(rates_after[off]):.0f} req/s off",
        "report",
        f"{ra:.2f}x (median of per-round ratios)",
        "INFO",
    )


def _delta(state: dict[str, object], key: str) -> int | None:
    now, before = state.get(key), state.get(f"{key}_before")
    return now - before if isinstance(now, int) and isinstance(before, int) else None


def _grew(now: dict[str, object], before: dict[str, object], key: str) -> str:
    a, b = now.get(key), before.get(key)
    return str(a - b) if isinstance(a, int) and isinstance(b, int) else "?"


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


# Before the memory figures every process is left idle this long: coderouterd
# gives freed heap back after 2-4 s without requests (telemetry/memory.py), so
# its RSS with open streams would otherwise depend on how soon after its last
# throughput round the phase happened to start (65.7 or 83.5 MB before the
# streams, 114 or 121 MB with them, in two runs of the same code).
MEMORY_SETTLE_S = 5.0


async def phase_memory(ctx: Ctx) -> None:
    unpin(ctx)
    await asyncio.sleep(min(MEMORY_SETTLE_S, max(ctx.left() - 60, 0)))
    # coderouterd+malloc too: what the malloc settings cost in memory.
    systems = [
        s
        for s in ctx.active(translate=False, baseline=False)
        if s.name not in ("direct", "coderouterd@info")
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
