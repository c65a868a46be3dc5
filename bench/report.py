"""Figures computed from the results (the peer), and RESULTS.md.

RESULTS.md is rewritten by every run, except for one hand-written section,
`## Hot-path changes`, which is carried over verbatim from the file it replaces.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from baseline import comparison_section
from bodies import SIZES, describe, make_body, make_conversation
from common import (
    MALLOC_ENV,
    PEER_VENV,
    RECORDING_FIGURE,
    TARGET_RECORDING,
    TURNS,
    Ctx,
    fmt_ms,
    opt,
    ratio,
    say,
)

# ---------------------------------------------------------------- recording and peer


def recording_figure(ctx: Ctx) -> None:
    """The recording figure comes from the throughput phase: SKIP it when that did not run."""
    if any(f["figure"] == RECORDING_FIGURE for f in ctx.figures):
        return
    ctx.figure(RECORDING_FIGURE, "coderouterd", "-", f">= {TARGET_RECORDING}x off", "-", "SKIP")
    ctx.skipped.setdefault("recording on vs off", "the throughput phase did not run")


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


HOT_PATH = "## Hot-path changes"


def hot_path_section(path: Path) -> str:
    """The hand-written `## Hot-path changes` section of the results file at `path`, verbatim
    up to the next `## ` heading (outside code fences) or the end, or a placeholder."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        lines = []
    start = next((i for i, line in enumerate(lines) if line.startswith(HOT_PATH)), None)
    if start is None:
        return f"{HOT_PATH}\n\n(none recorded yet)\n"
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and lines[i].startswith("## "):
            end = i
            break
    return "".join(lines[start:end])


def write_results(ctx: Ctx, path: Path, started: float, argv: list[str]) -> None:
    r = ctx.results
    hot_path = hot_path_section(path)
    L: list[str] = []
    w = L.append
    w("# coderouterd bench results\n")
    w(
        f"Written by `{' '.join(['python bench/run.py', *argv[1:]])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} in {time.monotonic() - started:.0f} s. "
        "How to read it: [README.md](README.md).\n"
    )
    if ctx.quick:
        w("**Quick run**: few samples; use the full run for figures to quote.\n")
    if ctx.only:
        w(
            f"**Partial run**: only {', '.join(ctx.only)}; the other phases were skipped by "
            "`--only` (see Skipped).\n"
        )
    w("## Machine and versions\n")
    w("| | |\n|---|---|")
    sources = {"measured coderouterd": ctx.source}
    if ctx.baseline_source:
        sources["baseline coderouterd"] = f"{ctx.baseline_source} (exported)"
    for k, v in {**machine(), **versions(), **sources}.items():
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
    L.extend(comparison_section(ctx))
    if ctx.skipped:
        w("## Skipped\n")
        for k, v in ctx.skipped.items():
            w(f"- **{k}**: {v}")
        w("")
    w(hot_path.rstrip("\n") + "\n")
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
        w(f"## Added latency, non-streaming, concurrency 1, {key} body ({_sizes(key)})\n")
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
                f"{opt(row['cpu_us_per_req'], '.0f')} | {opt(row['minflt_per_req'], '.1f')} | "
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
        w(
            "## Throughput per core, concurrency 32, 80k non-streaming\n\n"
            f"32 conversations, one per connection, each sending its {TURNS} turns in order "
            f"and starting over ({_sizes('80k')}).\n"
        )
        w(
            f"{tpr['rounds']} interleaved rounds of "
            f"{ctx.counts.tput_count // ctx.counts.tput_rounds} "
            "requests per system. The system under test alone on one core; the load generator "
            "(raw asyncio client) and the mock on the other. req/s is the median over rounds; "
            "the ratio is the median of per-round ratios. `direct` is the ceiling of client + "
            "mock.\n"
        )
        w(
            "After its window each system is left, untimed and still on its core, until it is "
            "idle: *CPU after* is the CPU it spent then (work deferred past its answers, e.g. "
            "compressing replay records), and *req/s counting it* charges that CPU to the "
            "window.\n"
        )
        w(
            "| system | requests | req/s (median) | min-max | / floor | CPU us/req | "
            "CPU after us/req | req/s counting it | its core busy | runner core busy | failed |"
        )
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, row in tp.items():
            w(
                f"| {name} | {row['requests']} | {row['rps']:.0f} | {row['rps_min']:.0f}-"
                f"{row['rps_max']:.0f} | {row['ratio_to_floor']:.2f} | "
                f"{row['cpu_us_per_req']:.0f} | {row['after_cpu_us_per_req']:.0f} | "
                f"{row['rps_with_after']:.0f} | "
                f"{row['sut_core_busy']:.0%} | {row['client_core_busy']:.0%} | {row['failed']} |"
            )
        w("")
    rec = r.get("recording")
    if rec:
        w("## Recording on vs off: the databases\n")
        w(
            "`coderouterd` records a replay (request and response; the body as what it adds "
            "to its conversation's last record, else as shared pieces) of every request, the "
            "default; `coderouterd-norec` is the same daemon with "
            "`state: {replay: {enabled: false}}`. Both write a request row per request. Each "
            "starts on an empty state dir under the run's temp dir; rows are counted "
            "read-only after the throughput phase. *Deltas*: records stored as what their "
            "body adds to the last; *stored uncompressed*: records built while the recorder "
            "was behind (see README, Replay bodies); *KB per record*: the records' own blobs "
            "and the pieces, over all the phases' records.\n"
        )
        w(
            "| system | database | request rows | replay rows | during throughput (requests / "
            "replays) | replays dropped | replays too large | rows dropped | deltas | stored "
            "uncompressed | KB per record (own + pieces) |"
        )
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, s in rec.items():
            during = [
                str(s[k] - s[f"{k}_before"])
                if isinstance(s.get(k), int) and isinstance(s.get(f"{k}_before"), int)
                else "?"
                for k in ("requests", "replays")
            ]
            w(
                f"| {name} | {s.get('error') or s['db']} | {s.get('requests', '-')} | "
                f"{s.get('replays', '-')} | {' / '.join(during)} | {s.get('replays_dropped')} | "
                f"{s.get('replays_too_large')} | {s.get('dropped')} | "
                f"{s.get('replays_delta', '-')} | {s.get('replays_uncompressed', '-')} | "
                f"{_per_record(s)} |"
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
        f"- The 80k and 200k latency figures and the throughput figure send conversations: "
        f"{TURNS} successive turns, each body the one before with one more tool call and its "
        "result and the cache breakpoint moved to the last message, as Claude Code sends them. "
        "A router may remember what it read of the last turn (coderouterd does); a body "
        "resent unchanged would flatter it."
    )
    w(
        "- coderouterd runs with `--log-level warning` so that the per-request "
        "`request.completed` line is not part of the main figures; `coderouterd@info` is the "
        "same daemon at the default level, its stderr going to a file."
    )
    malloc = ", ".join(f"`{k}={v}`" for k, v in MALLOC_ENV.items())
    w(f"- `coderouterd+malloc` is the same daemon with {malloc}.")
    w(
        "- `coderouterd-norec` is the same daemon with replay records off; it is measured in "
        "the throughput phase only."
    )
    if ctx.baseline_source:
        w(
            "- `coderouterd@base` is the same daemon running the `--baseline` commit's code; it "
            "takes no part in the memory phase."
        )
    for note in ctx.notes:
        w(f"- {note}")
    w(f"- Command: `{' '.join(argv)}`")
    w("")
    path.write_text("\n".join(L))
    say(f"wrote {path}")


def _sizes(key: str) -> str:
    if key == "1k":
        return f"{len(make_body(SIZES[key]))} bytes"
    turns = [len(b) for b in make_conversation(SIZES[key], TURNS, seed=0)]
    return f"turns of {min(turns)}-{max(turns)} bytes"


def _per_record(s: dict[str, Any]) -> str:
    n = s.get("replays")
    own, shared = s.get("replay_bytes"), s.get("piece_bytes")
    if not isinstance(n, int) or not n or not isinstance(own, int) or not isinstance(shared, int):
        return "-"
    return f"{own / n / 1024:.1f} + {shared / n / 1024:.1f}"
