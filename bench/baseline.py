"""The measured coderouterd against the baseline of `--baseline REV`, figure by figure.

Both daemons are measured in the same interleaved rounds, so the ratio
measured / baseline is as free of the machine's drift as a ratio to the floor.
Next to it stand each one's ratio to the floor: whether a change made things
better, and how far both are from the target.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from common import (
    BASELINE,
    TARGET_CHUNK_MS,
    TARGET_PASSTHROUGH,
    TARGET_THROUGHPUT,
    Ctx,
    ratio,
    say,
)

CRD = "coderouterd"


@dataclass(frozen=True)
class Row:
    figure: str
    unit: str  # "ms", "us" or "req/s"
    measured: float
    base: float
    ratio: float  # measured / baseline
    measured_floor: float | None  # measured / floor
    base_floor: float | None  # baseline / floor
    better: str  # which way a ratio is an improvement: "< 1" or "> 1"
    target: str


def _pair(
    figure: str, key: str, rows: dict[str, Any], *, scale: float, unit: str, target: str = "-"
) -> Row | None:
    crd, base, floor = rows.get(CRD), rows.get(BASELINE), rows.get("floor")
    if not crd or not base or crd.get(key) is None or base.get(key) is None:
        return None
    fv = floor.get(key) if floor else None
    return Row(
        figure,
        unit,
        crd[key] * scale,
        base[key] * scale,
        ratio(crd[key], base[key]),
        None if fv is None else ratio(crd[key], fv),
        None if fv is None else ratio(base[key], fv),
        "< 1",
        target,
    )


def _throughput(rows: dict[str, Any]) -> list[Row | None]:
    crd, base = rows.get(CRD), rows.get(BASELINE)
    if not crd or not base:
        return []
    per_round = [ratio(a, b) for a, b in zip(crd["round_rps"], base["round_rps"], strict=False)]
    rps = Row(
        "throughput per core, c=32, 80k",
        "req/s",
        crd["rps"],
        base["rps"],
        statistics.median(per_round) if per_round else float("nan"),
        crd["ratio_to_floor"],
        base["ratio_to_floor"],
        "> 1",
        f">= {TARGET_THROUGHPUT}x floor",
    )
    cpu = _pair("CPU per request, throughput", "cpu_us_per_req", rows, scale=1, unit="us")
    return [rps, cpu]


def comparison(results: dict[str, Any]) -> list[Row]:
    """Every figure both daemons were measured for, in the order of the phases."""
    out: list[Row | None] = []
    for key in ("1k", "80k", "200k"):
        rows = results.get(f"latency_{key}", {}).get("rows", {})
        out += [
            _pair(
                f"added latency p50, c=1, {key}",
                "added_p50_ns",
                rows,
                scale=1e-6,
                unit="ms",
                target=f"<= {TARGET_PASSTHROUGH}x floor",
            ),
            _pair(f"added latency p99, c=1, {key}", "added_p99_ns", rows, scale=1e-6, unit="ms"),
            # None where the daemon's process also serves another system.
            _pair(f"CPU per request, c=1, {key}", "cpu_us_per_req", rows, scale=1, unit="us"),
        ]
    rows = results.get("stream", {}).get("rows", {})
    out += [
        _pair("streaming added TTFT p50", "added_ttft_p50_ns", rows, scale=1e-6, unit="ms"),
        _pair(
            "streaming added per-chunk p50",
            "added_chunk_p50_ns",
            rows,
            scale=1e-6,
            unit="ms",
            target=f"<= {TARGET_CHUNK_MS} ms",
        ),
    ]
    out += _throughput(results.get("throughput", {}).get("rows", {}))
    return [r for r in out if r is not None]


def _value(v: float, unit: str) -> str:
    return f"{v:.3f} ms" if unit == "ms" else f"{v:.0f} {unit}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def print_comparison(ctx: Ctx) -> None:
    if ctx.baseline_source is None:
        return
    say(f"\nagainst the baseline ({BASELINE} = {ctx.baseline_source}):")
    if BASELINE in ctx.skipped:
        say(f"  skipped: {ctx.skipped[BASELINE]}")
        return
    for r in comparison(ctx.results):
        say(
            f"  {r.figure:<40} {_value(r.measured, r.unit)} vs {_value(r.base, r.unit)}: "
            f"{r.ratio:.2f}x (better {r.better}); to floor {_x(r.measured_floor)} vs "
            f"{_x(r.base_floor)}"
        )


def comparison_section(ctx: Ctx) -> list[str]:
    """The lines of RESULTS.md's "Against the baseline" section ([] without --baseline)."""
    if ctx.baseline_source is None:
        return []
    out = [
        "## Against the baseline\n",
        f"`{BASELINE}` is the `coderouterd` daemon (same config, same flags) running "
        f"{ctx.baseline_source}, measured in the same interleaved rounds. "
        "*measured / baseline* below 1 is an improvement for times and CPU, above 1 for "
        "req/s (there it is the median of per-round ratios); the ratios to the floor show "
        "how far each is from the target. "
        "The PASS/FAIL lines above are the measured `coderouterd`'s only.\n",
    ]
    if BASELINE in ctx.skipped:
        return [*out, f"Not measured: {ctx.skipped[BASELINE]}\n"]
    rows = comparison(ctx.results)
    if not rows:
        return [*out, "No phase measured both daemons.\n"]
    out += [
        f"| figure | {CRD} | {BASELINE} | measured / baseline | better if | {CRD} / floor | "
        f"{BASELINE} / floor | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r.figure} | {_value(r.measured, r.unit)} | {_value(r.base, r.unit)} | "
        f"**{r.ratio:.2f}** | {r.better} | {_x(r.measured_floor)} | {_x(r.base_floor)} | "
        f"{r.target} |"
        for r in rows
    ]
    return [*out, ""]
