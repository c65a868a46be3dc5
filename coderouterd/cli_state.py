"""Commands on the daemon's database: db status|migrate, replay, audit tail|verify,
and the helpers the request log's commands (cli_requests) share with them.

They read the database directly (read-only, so they never block the running
daemon's writer); only `db migrate` writes, and `replay` re-sends a recorded
request through the running daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import msgspec

from coderouterd.config import LoadedConfig, resolve_control_socket, resolve_state_dir
from coderouterd.ctl.client import fetch_status
from coderouterd.errors import CoderouterError
from coderouterd.routing.plan import MODE_HEADER, PROFILE_HEADER
from coderouterd.state import audit, reads
from coderouterd.state.assemble import Assembled, assemble
from coderouterd.state.db import StateError, db_path, open_db
from coderouterd.state.migrate import MigrationStatus, discover, migrate, status
from coderouterd.state.replay import ReplayRecord, diff, get_replay, list_replays, render_diff

EXIT_OK = 0
EXIT_FAILED = 1

_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_commands(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    db = sub.add_parser("db", help="the state database").add_subparsers(required=True)
    for name, func, text in (
        ("status", _db_status, "schema version, pending migrations, size, integrity"),
        ("migrate", _db_migrate, "apply pending migrations"),
    ):
        p = db.add_parser(name, help=text)
        common_args(p, config_arg)
        p.set_defaults(func=func)

    replay = sub.add_parser("replay", help="re-send a recorded request, or list records")
    common_args(replay, config_arg)
    replay.add_argument("request_id", help="a request id, or 'list'")
    target = replay.add_mutually_exclusive_group()
    target.add_argument("--provider", help="send to this provider alone (with list: filter)")
    target.add_argument("--profile", help="send through this profile (default: the recorded one)")
    replay.add_argument("--diff", action="store_true", help="compare with the recorded response")
    replay.add_argument("--since", help="with list: 30m, 12h, 7d or an ISO date")
    replay.add_argument("--limit", type=int, default=50, help="with list: most rows shown")
    replay.add_argument("--socket", type=Path, help="control socket (to find the daemon)")
    replay.set_defaults(func=_replay)

    aud = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(required=True)
    tail = aud.add_parser("tail", help="the last audit events")
    common_args(tail, config_arg)
    tail.add_argument("-n", type=int, default=20, help="how many events")
    tail.set_defaults(func=_audit_tail)
    verify = aud.add_parser("verify", help="check the chain; names an edited or deleted row")
    common_args(verify, config_arg)
    verify.add_argument(
        "--expect-last-seq",
        type=int,
        metavar="N",
        help="the log must reach row N (a last seq noted earlier): catches rows cut off the end",
    )
    verify.set_defaults(func=_audit_verify)


def common_args(
    p: argparse.ArgumentParser, config_arg: Callable[[argparse.ArgumentParser], None]
) -> None:
    config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def db_file(args: argparse.Namespace) -> tuple[LoadedConfig, Path]:
    loaded: LoadedConfig = args.load(args.config)
    return loaded, db_path(resolve_state_dir(loaded.config))


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def reading(path: Path, *, current: bool = True) -> AsyncIterator[aiosqlite.Connection]:
    """The database, read-only, closed on leaving; `current`: refused unless
    its schema is the one this coderouterd writes (a reader of an older one
    would fail on the first column it lacks)."""
    if not path.exists():  # noqa: ASYNC240 - one stat before anything else runs
        raise StateError(f"no state database at {path} (has the daemon run with this config?)")
    conn = await open_db(path, readonly=True)
    try:
        if current:
            _check_current(path, await status(conn, discover()))
        yield conn
    finally:
        await conn.close()


def _check_current(path: Path, found: MigrationStatus) -> None:
    if found.current > found.latest:
        raise StateError(
            f"{path} has schema version {found.current}, newer than this coderouterd "
            f"knows ({found.latest}): upgrade coderouterd"
        )
    if found.current < found.latest:
        raise StateError(
            f"{path} has schema version {found.current}, this coderouterd reads "
            f"{found.latest}: run `coderouterd db migrate` (or restart the daemon, which "
            "migrates at start)"
        )


def since_of(args: argparse.Namespace) -> float | None:
    """`--since` as a Unix time, None when not given."""
    return parse_since(args.since, time.time()) if args.since else None


def show(value: Any, text: str, *, as_json: bool) -> None:
    print(msgspec.json.format(msgspec.json.encode(value)).decode() if as_json else text)


def utc_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


# db


def _db_status(args: argparse.Namespace) -> int:
    _, path = db_file(args)

    async def run() -> int:
        async with reading(path, current=False) as conn:
            st = await status(conn, discover())
            health = await reads.db_health(conn, path)
            problems = await reads.integrity_check(conn)
        reply = {
            "path": str(path),
            "schema_version": st.current,
            "latest": st.latest,
            "pending": [f"{m.version:04d}_{m.name}" for m in st.pending],
            "size_bytes": health.size_bytes,
            "wal_bytes": health.wal_bytes,
            "integrity": problems or ["ok"],
        }
        text = "\n".join(f"{k:<15}{v}" for k, v in reply.items())
        show(reply, text, as_json=args.json)
        return EXIT_OK if not problems else EXIT_FAILED

    return run_async(run())


def _db_migrate(args: argparse.Namespace) -> int:
    loaded, path = db_file(args)

    async def run() -> int:
        conn = await open_db(path, synchronous=loaded.config.state.synchronous)
        try:
            applied = await migrate(conn, discover(), now=time.time())
        finally:
            await conn.close()
        names = [f"{m.version:04d}_{m.name}" for m in applied]
        show({"applied": names}, "\n".join(names) or "up to date", as_json=args.json)
        return EXIT_OK

    return run_async(run())


# audit


def _audit_tail(args: argparse.Namespace) -> int:
    _, path = db_file(args)

    async def run() -> int:
        async with reading(path, current=False) as conn:
            rows = await audit.tail(conn, args.n)
        text = "\n".join(
            f"{r.seq:>6}  {utc_time(r.ts)}  {r.event:<28} {json.dumps(r.fields, sort_keys=True)}"
            for r in rows
        )
        show(rows, text or "the audit log is empty", as_json=args.json)
        return EXIT_OK

    return run_async(run())


def _audit_verify(args: argparse.Namespace) -> int:
    _, path = db_file(args)

    async def run() -> int:
        async with reading(path, current=False) as conn:
            result = await audit.verify(conn, expected_last_seq=args.expect_last_seq)
        text = (
            f"ok: {result.rows_checked} rows, chain intact, last seq {result.last_seq or 0}"
            if result.ok
            else f"TAMPERED: {result.problem}"
        )
        show(result, text, as_json=args.json)
        return EXIT_OK if result.ok else EXIT_FAILED

    return run_async(run())


# replay


def parse_since(text: str, now: float) -> float:
    if m := _DURATION.match(text):
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CoderouterError(f"--since {text!r}: expected 30m, 12h, 7d or an ISO date") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _replay(args: argparse.Namespace) -> int:
    if args.request_id == "list":
        return _replay_list(args)
    loaded, path = db_file(args)
    socket = args.socket or resolve_control_socket(loaded.config)
    return run_async(_replay_one(args, path, socket))


def _replay_list(args: argparse.Namespace) -> int:
    _, path = db_file(args)
    since = since_of(args)

    async def run() -> int:
        async with reading(path) as conn:
            rows = await list_replays(conn, since=since, provider=args.provider, limit=args.limit)
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
