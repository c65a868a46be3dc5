"""The latency phases: added latency at concurrency 1 (non-streaming) and streaming."""

from __future__ import annotations

import gc
import statistics

import procs
from bodies import SIZES
from common import (
    TARGET_CHUNK_MS,
    TARGET_PASSTHROUGH,
    TARGET_TRANSLATION,
    Ctx,
    fmt_ms,
    opt,
    pct,
    pin_latency,
    ratio,
    say,
    settle,
    timed_rounds,
)
from load import AioClient

# ---------------------------------------------------------------- latency


async def phase_latency(ctx: Ctx, size_key: str) -> None:
    c = ctx.counts
    size = SIZES[size_key]
    systems = ctx.active()
    pin_latency(ctx)
    clients = {s.name: AioClient() for s in systems}
    # 1 KB is a first turn; the larger sizes are a conversation's turns, sent in order.
    bodies = {
        s.name: [ctx.body(size, False, s.model("fast"))]
        if size < SIZES["80k"]
        else ctx.conversation(size, s.model("fast"))
        for s in systems
    }
    urls = {s.name: s.url("fast") for s in systems}
    errors = dict.fromkeys(clients, 0)
    lat: dict[str, list[int]] = {s.name: [] for s in systems}
    added: dict[str, list[int]] = {s.name: [] for s in systems}
    try:
        for s in systems:
            for _ in range(c.lat_warm):
                await clients[s.name].unary(urls[s.name], bodies[s.name][0])
        before = {s.name: procs.cpu_sample(s.proc.pid) for s in systems}
        gc.collect()
        gc.disable()
        rounds = 0
        for r, orders in timed_rounds(ctx, systems, c.lat_rounds, c.lat_sweeps, c.lat_cap_s):
            rnd: dict[str, list[int]] = {s.name: [] for s in orders[0]}
            for sweep, order in enumerate(orders):
                for s in order:
                    turns = bodies[s.name]
                    body = turns[(r * c.lat_sweeps + sweep) % len(turns)]
                    try:
                        ns, status, _ = await clients[s.name].unary(urls[s.name], body)
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
            if "floor" in rnd:
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
            f"  cpu {opt(row['cpu_us_per_req'], '.0f')} us/req"
            f"  faults {opt(row['minflt_per_req'], '.1f')}/req  errors {row['errors']}"
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
        rounds = 0
        rs = timed_rounds(ctx, systems, c.stream_rounds, c.stream_sweeps, c.stream_cap_s)
        for _, orders in rs:
            rt: dict[str, list[int]] = {s.name: [] for s in orders[0]}
            rc: dict[str, list[int]] = {s.name: [] for s in orders[0]}
            for order in orders:
                for s in order:
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
            if "floor" in rt:
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
