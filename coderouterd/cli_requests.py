"""Commands on the request log: `requests` (recent ones, or one whole) and `usage`.

They read the database read-only, like `replay list`, so they never hold up
a running daemon; what they show is what the daemon has committed (its
writer commits within `state.commit_window_ms`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import msgspec

from coderouterd.cli_state import (
    EXIT_OK,
    common_args,
    count,
    db_file,
    reading,
    run_async,
    show,
    since,
    utc_time,
)
from coderouterd.errors import CoderouterError
from coderouterd.scrub import escape_controls
from coderouterd.state import reads
from coderouterd.state.records import AttemptRow, RequestRow
from coderouterd.state.usage import USAGE_GROUPS, Usage, usage
from coderouterd.translate.images import IMAGE_TOKENS


def add_commands(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    req = sub.add_parser(
        "requests", help="the request log: recent requests, or one with its attempts"
    )
    common_args(req, config_arg)
    req.add_argument("request_id", nargs="?", help="show this request whole")
    req.add_argument("--since", type=since, help="30m, 12h, 7d or an ISO date")
    req.add_argument("--provider", help="only those this provider answered")
    req.add_argument("--profile", help="only those routed through this profile")
    req.add_argument("--failed", action="store_true", help="only those answered with an error")
    req.add_argument("--limit", type=count, default=50, help="most rows shown (50)")
    req.set_defaults(func=_requests)

    use = sub.add_parser("usage", help="requests, tokens and cost from the request log, by group")
    common_args(use, config_arg)
    use.add_argument(
        "--since", type=since, help="30m, 12h, 7d or an ISO date (default: all the log keeps)"
    )
    use.add_argument(
        "--by", choices=list(USAGE_GROUPS), default="provider", help="group by (provider)"
    )
    use.set_defaults(func=_usage)


def _requests(args: argparse.Namespace) -> int:
    _, path = db_file(args)

    async def run() -> int:
        async with reading(path) as conn:
            if args.request_id is None:
                rows = await reads.recent_requests(
                    conn, since=args.since, provider=args.provider, profile=args.profile,
                    failed=args.failed, limit=args.limit,
                )  # fmt: skip
                show(rows, _table(rows), as_json=args.json)
                return EXIT_OK
            row = await reads.request(conn, args.request_id)
            recorded = row is not None and await reads.has_replay(conn, args.request_id)
        if row is None:
            raise CoderouterError(
                f"no request {args.request_id!r} in the request log "
                "(a request id as in the x-request-id header; rows older than "
                "state.retention_days are deleted)"
            )
        shown = {**msgspec.structs.asdict(row), "replay_recorded": recorded}
        show(shown, _whole(row, recorded), as_json=args.json)
        return EXIT_OK

    return run_async(run())


def _usage(args: argparse.Namespace) -> int:
    _, path = db_file(args)

    async def run() -> int:
        async with reading(path) as conn:
            groups = await usage(conn, since=args.since, by=args.by)
        show(groups, _usage_table(groups, args.by), as_json=args.json)
        return EXIT_OK

    return run_async(run())


# Text: every cell and line through escape_controls, since a client chose
# some of what they hold (its model's name, its request id, the error text
# its body caused) and a line break in one would forge a row.


def _table(rows: list[RequestRow]) -> str:
    if not rows:
        return "no requests"
    lines = [
        _columns(r.id, utc_time(r.ts), r.profile or "-", r.provider or "-", str(r.status),
                 _ms(r.total_ms), _tokens(r), _usd(r.cost_usd), _path(r.attempts))
        for r in rows
    ]  # fmt: skip
    head = _columns("ID", "TIME (UTC)", "PROFILE", "PROVIDER", "STATUS", "TOTAL", "TOKENS IN/OUT",
                    "COST", "ATTEMPTS")  # fmt: skip
    return "\n".join([head, *lines])


_WIDTHS = (28, 19, 12, 12, 6, 8, 13, 9)


def _columns(*cells: str) -> str:
    shown = [escape_controls(c) for c in cells]
    padded = [c.ljust(w) for c, w in zip(shown, _WIDTHS, strict=False)]
    return "  ".join([*padded, *shown[len(_WIDTHS) :]]).rstrip()


def _path(attempts: tuple[AttemptRow, ...]) -> str:
    """The providers tried, in order: `ollama (timeout) > claude`."""
    return " > ".join(
        a.provider if a.outcome == "ok" else f"{a.provider} ({a.reason or a.outcome})"
        for a in attempts
    )


def _whole(r: RequestRow, recorded: bool) -> str:
    answer = [f"stop_reason {r.stop_reason or '-'}"]
    if r.tool_use is not None:
        answer.append("called a tool" if r.tool_use else "no tool call")
    answer.append("tools offered" if r.tools_offered else "no tools offered")
    lines = [
        f"request {r.id}",
        f"  time       {utc_time(r.ts)} UTC",
        f"  client     {r.dialect}, {'stream' if r.stream else 'unary'}, "
        f"model {r.requested_model or '-'}",
        f"  profile    {r.profile or '- (refused before routing)'}",
        f"  provider   {r.provider or '-'}",
        f"  status     {r.status}{' (client went away)' if r.client_disconnected else ''}",
        f"  timing     first byte {_ms(r.ttfb_ms)}, total {_ms(r.total_ms)}",
        f"  usage      {_usage_line(r)}",
        f"  prompt     ~{_n(r.prompt_estimate)} tokens (estimated at four bytes a token"
        + (f"; {_images(r)})" if r.prompt_images else ")")
        if r.prompt_estimate is not None
        else "  prompt     -",
        f"  cost       {_usd(r.cost_usd)}"
        + (f", {_usd(r.savings_usd)} saved by the cache" if r.savings_usd else "")
        + (f" (cache {r.cache_outcome})" if r.cache_outcome else ""),
        f"  answer     {', '.join(answer)}",
    ]
    if r.repairs:
        lines.append(f"  repairs    {r.repairs} tool call(s) lifted out of the model's text")
    if r.error:
        lines.append(f"  error      {r.error}")
    lines.append("  attempts" if r.attempts else "  attempts   none (refused before routing)")
    lines.extend(f"    {a.seq + 1}. {_attempt(a)}" for a in r.attempts)
    lines.append(
        f"  replay     {_replay_command(r.id)}" if recorded else "  replay     not recorded"
    )
    return "\n".join(escape_controls(line) for line in lines)


def _replay_command(request_id: str) -> str:
    """The command that replays `request_id`. A client may have chosen the id
    (x-request-id): `list`, or one starting with `-`, is no positional."""
    if request_id == "list" or request_id.startswith("-"):
        return f"coderouterd replay --id={request_id}"
    return f"coderouterd replay {request_id}"


def _attempt(a: AttemptRow) -> str:
    parts = [a.provider, a.outcome]
    if a.reason:
        parts.append(a.reason)
    if a.status is not None:
        parts.append(f"status {a.status}")
    if a.prompt_tokens is not None or a.context_window is not None:
        parts.append(f"prompt {_n(a.prompt_tokens)} tokens > window {_n(a.context_window)}")
    if a.queued_ms is not None:
        parts.append(f"waited {_ms(a.queued_ms)} for a slot")
    if a.ttfb_ms is not None:
        parts.append(f"first byte {_ms(a.ttfb_ms)}")
    if a.latency_ms is not None:
        parts.append(f"took {_ms(a.latency_ms)}")
    if a.cost_usd:
        parts.append(_usd(a.cost_usd))
    if a.model is not None:
        parts.append(f"model {a.model}")
    text = ", ".join(parts)
    return f"{text}: {a.detail}" if a.detail else text


def _images(r: RequestRow) -> str:
    n = r.prompt_images or 0
    tokens = r.prompt_image_tokens
    if tokens is None:  # a row written before what images count for was kept
        tokens = n * IMAGE_TOKENS
    return f"{n} image{'s' if n != 1 else ''} counted {_n(tokens)} tokens by their size"


def _usage_line(r: RequestRow) -> str:
    if r.input_tokens is None and r.output_tokens is None:
        return "-"
    counts = [
        f"in {_n(r.input_tokens)}",
        f"out {_n(r.output_tokens)}",
        f"cache read {_n(r.cache_read_input_tokens)}",
        f"cache write {_n(r.cache_creation_input_tokens)}",
    ]
    return ", ".join(counts) + (" (estimated)" if r.usage_estimated else "")


def _usage_table(groups: list[Usage], by: str) -> str:
    if not groups:
        return "no requests"
    head = (by.upper(), "REQUESTS", "FAILED", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE",
            "COST", "SAVED")  # fmt: skip
    rows = [
        (g.key, str(g.requests), str(g.failed), str(g.input_tokens), str(g.output_tokens),
         str(g.cache_read_input_tokens), str(g.cache_creation_input_tokens), _usd(g.cost_usd),
         _usd(g.savings_usd))
        for g in groups
    ]  # fmt: skip
    total = (
        "total", str(sum(g.requests for g in groups)), str(sum(g.failed for g in groups)),
        str(sum(g.input_tokens for g in groups)), str(sum(g.output_tokens for g in groups)),
        str(sum(g.cache_read_input_tokens for g in groups)),
        str(sum(g.cache_creation_input_tokens for g in groups)),
        _usd(sum(g.cost_usd for g in groups)), _usd(sum(g.savings_usd for g in groups)),
    )  # fmt: skip
    table = [tuple(escape_controls(c) for c in row) for row in (head, *rows, total)]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    # The group's name to the left, numbers to the right.
    lines = [
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
            ]
        )
        for row in table
    ]
    estimated = sum(g.estimated for g in groups)
    if estimated:
        lines.append(f"({estimated} request(s) with usage estimated: the backend reported none)")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _tokens(r: RequestRow) -> str:
    if r.input_tokens is None and r.output_tokens is None:
        return "-"
    return f"{_n(r.input_tokens)}/{_n(r.output_tokens)}" + ("~" if r.usage_estimated else "")
