"""`coderouterd replay`: list the recorded requests, or re-send one through
the running daemon and show (and diff) what it answers now."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from coderouterd.cli_state import (
    EXIT_OK,
    common_args,
    count,
    db_file,
    reading,
    run_async,
    show,
    since_of,
    utc_time,
)
from coderouterd.config import resolve_control_socket
from coderouterd.config.model import Config
from coderouterd.ctl.client import fetch_status
from coderouterd.errors import CoderouterError
from coderouterd.routing.plan import MODE_HEADER, PROFILE_HEADER
from coderouterd.state import reads
from coderouterd.state.assemble import Assembled, assemble
from coderouterd.state.replay import ReplayRecord, diff, get_replay, list_replays, render_diff

_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


def add_command(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    replay = sub.add_parser("replay", help="re-send a recorded request, or list records")
    common_args(replay, config_arg)
    replay.add_argument("request_id", help="a request id, or 'list'")
    target = replay.add_mutually_exclusive_group()
    target.add_argument("--provider", help="send to this provider alone (with list: filter)")
    target.add_argument(
        "--profile", help="send through this profile (default: the recorded one; with list: filter)"
    )
    replay.add_argument("--diff", action="store_true", help="compare with the recorded response")
    replay.add_argument("--since", help="with list: 30m, 12h, 7d or an ISO date")
    replay.add_argument("--limit", type=count, default=50, help="with list: most rows shown")
    replay.add_argument("--socket", type=Path, help="control socket (to find the daemon)")
    replay.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    if args.request_id == "list":
        return _replay_list(args)
    loaded, path = db_file(args)
    _check_target(loaded.config, provider=args.provider, profile=args.profile)
    socket = args.socket or resolve_control_socket(loaded.config)
    return run_async(_replay_one(args, path, socket))


def _check_target(config: Config, *, provider: str | None, profile: str | None) -> None:
    """Refuse a replay the daemon would route elsewhere than asked: a model
    naming no provider goes to the default profile, one naming a profile to
    that profile; an unknown profile would be refused only after the send."""
    if provider is not None and config.provider(provider) is None:
        known = ", ".join(p.name for p in config.providers)
        raise CoderouterError(f"--provider {provider!r}: no such provider (configured: {known})")
    if provider is not None and config.profile(provider) is not None:
        raise CoderouterError(
            f"--provider {provider!r}: a profile has that name too, and a request naming it "
            f"goes through the profile: use --profile {provider}, or rename one of them"
        )
    if profile is not None and config.profile(profile) is None:
        known = ", ".join(p.name for p in config.profiles)
        raise CoderouterError(f"--profile {profile!r}: no such profile (configured: {known})")


def _replay_list(args: argparse.Namespace) -> int:
    _, path = db_file(args)
    since = since_of(args)

    async def run() -> int:
        async with reading(path) as conn:
            rows = await list_replays(
                conn, since=since, provider=args.provider, profile=args.profile, limit=args.limit
            )
        text = "\n".join(
            f"{r.request_id}  {utc_time(r.ts)}  {r.dialect:<9} {r.profile:<12} "
            f"{r.provider or '-':<14} {'stream' if r.stream else 'unary':<6} {r.size:>8}"
            for r in rows
        )
        show(rows, text or "no replay records", as_json=args.json)
        return EXIT_OK

    return run_async(run())


async def _replay_one(args: argparse.Namespace, path: Path, socket: Path) -> int:
    async with reading(path) as conn:
        record = await get_replay(conn, args.request_id)
        logged = await reads.request(conn, args.request_id)
    if record is None:
        raise CoderouterError(
            f"no replay record for request {args.request_id!r} "
            "(not recorded, recording off for its profile, or expired)"
        )
    listen = (await fetch_status(socket)).listen
    new, new_ms, new_status = await _resend(f"http://{listen}", record, args)
    changes = None
    if args.diff:
        recorded = assemble(record.dialect, record.stream, record.response_body or b"")
        changes = diff(
            recorded, new, recorded_ms=logged.total_ms if logged else None, new_ms=new_ms
        )
    reply = {
        "status": new_status,
        "latency_ms": round(new_ms, 1),
        "response": new,
        "changes": changes,
    }
    text = _render_assembled(new, new_status, new_ms)
    if changes is not None:
        text += "\n\n--- diff against the recorded response ---\n" + render_diff(changes)
    show(reply, text, as_json=args.json)
    return EXIT_OK


async def _resend(
    url: str, record: ReplayRecord, args: argparse.Namespace
) -> tuple[Assembled, float, int]:
    body = record.request_body
    # The recorded profile (or the one asked for) is named again, exactly.
    chosen = (MODE_HEADER, PROFILE_HEADER)
    headers = {k: v for k, v in record.request_headers.items() if k not in chosen}
    headers["content-type"] = "application/json"
    if args.provider:
        fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
        fields.pop("profile", None)
        fields["model"] = msgspec.Raw(msgspec.json.encode(args.provider))
        body = msgspec.json.encode(fields)
    else:
        headers[PROFILE_HEADER] = args.profile or record.profile
    started = time.perf_counter()
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + _PATHS[record.dialect], data=body, headers=headers) as resp,
    ):
        raw = await resp.read()
        status_code = resp.status
    elapsed_ms = (time.perf_counter() - started) * 1000
    return assemble(record.dialect, record.stream, raw), elapsed_ms, status_code


def _render_assembled(a: Assembled, status_code: int, ms: float) -> str:
    lines = [f"status {status_code}  {ms:.0f} ms  stop_reason {a.stop_reason or '-'}"]
    if a.error:
        lines.append(f"error: {a.error}")
    if a.thinking:
        lines.append(f"thinking: {a.thinking}")
    if a.text:
        lines.append(a.text)
    lines.extend(f"tool call {c.name}: {json.dumps(c.input, sort_keys=True)}" for c in a.tool_calls)
    if a.usage:
        lines.append("usage: " + ", ".join(f"{k}={v}" for k, v in sorted(a.usage.items())))
    return "\n".join(lines)
