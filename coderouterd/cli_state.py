"""Commands on the daemon's database: db status|migrate, audit tail|verify,
and the helpers the request log's and replay's commands (cli_requests,
cli_replay) share with them.

They read the database directly (read-only, so they never block the running
daemon's writer); only `db migrate` writes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from coderouterd.config import LoadedConfig, resolve_state_dir
from coderouterd.errors import CoderouterError
from coderouterd.state import audit, reads
from coderouterd.state.db import StateError, db_path, open_db, read_error
from coderouterd.state.migrate import MigrationStatus, discover, migrate, status

EXIT_OK = 0
EXIT_FAILED = 1

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The most rows a count option asks for: far more than a terminal shows, and
# well within SQLite's integers.
MAX_COUNT = 1_000_000


def count(text: str) -> int:
    """The argparse type of every count option (`--limit`, `-n`): 1 to MAX_COUNT."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value}: must be at most {MAX_COUNT}")
    return value


def add_commands(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    db = sub.add_parser("db", help="the state database").add_subparsers(required=True)
    for name, func, text in (
        ("status", _db_status, "schema version, pending migrations, size, integrity"),
        ("migrate", _db_migrate, "apply pending migrations"),
    ):
        p = db.add_parser(name, help=text)
        common_args(p, config_arg)
        p.set_defaults(func=func)

    aud = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(required=True)
    tail = aud.add_parser("tail", help="the last audit events")
    common_args(tail, config_arg)
    tail.add_argument("-n", type=count, default=20, help="how many events")
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
    would fail on the first column it lacks). SQLite's errors, in the block
    too, leave as a StateError saying what is wrong with the file.

    The block reads in one transaction, so every read sees the same commit:
    a record and the earlier ones its body continues, or a request and its
    attempts, even while the daemon's retention deletes and rewrites them
    between two of its statements."""
    if not path.exists():  # noqa: ASYNC240 - one stat before anything else runs
        raise StateError(f"no state database at {path} (has the daemon run with this config?)")
    if not path.is_file():  # noqa: ASYNC240 - as above
        raise StateError(f"{path} is not a file, so no SQLite database: check server.state_dir")
    conn = await open_db(path, readonly=True)
    try:
        # Deferred: the snapshot is taken at the first read and held until close.
        await conn.execute("BEGIN")
        if current:
            _check_current(path, await status(conn, discover()))
        yield conn
    except sqlite3.Error as exc:
        raise read_error(path, exc) from exc
    finally:
        await conn.close()


async def _require_audit_log(conn: aiosqlite.Connection, path: Path) -> None:
    """Refuse a database without the audit log (one no daemon has started on):
    an empty log there would read as an intact one."""
    if (await status(conn, discover())).current == 0:
        raise StateError(
            f"{path} has no audit log: no coderouterd has started on it (schema version 0); "
            "check server.state_dir"
        )


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
            problems = await _integrity(conn)
            try:
                st: MigrationStatus | None = await status(conn, discover())
            except sqlite3.DatabaseError as exc:
                # A damaged database still gets its report; this is one of its problems.
                st = None
                problems.append(f"schema_migrations unreadable: {exc}")
        known = discover()
        size, wal = reads.file_sizes(path)
        reply = {
            "path": str(path),
            "schema_version": st.current if st else None,
            "latest": known[-1].version if known else 0,
            "pending": [f"{m.version:04d}_{m.name}" for m in st.pending] if st else None,
            "size_bytes": size,
            "wal_bytes": wal,
            "integrity": problems or ["ok"],
        }
        text = "\n".join(f"{k:<15}{'?' if v is None else v}" for k, v in reply.items())
        show(reply, text, as_json=args.json)
        return EXIT_OK if not problems else EXIT_FAILED

    return run_async(run())


async def _integrity(conn: aiosqlite.Connection) -> list[str]:
    """SQLite's findings; a database too damaged to check is one finding."""
    try:
        return await reads.integrity_check(conn)
    except sqlite3.DatabaseError as exc:
        return [str(exc)]


def _db_migrate(args: argparse.Namespace) -> int:
    loaded, path = db_file(args)
    if not path.exists():
        # A mistyped state_dir would otherwise get a new, empty database.
        raise StateError(
            f"no state database at {path} to migrate (has the daemon run with this config?); "
            "the daemon creates it, migrated, when it starts"
        )

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
            await _require_audit_log(conn, path)
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
            await _require_audit_log(conn, path)
            result = await audit.verify(conn, expected_last_seq=args.expect_last_seq)
        text = (
            f"ok: {result.rows_checked} rows, chain intact, last seq {result.last_seq or 0}"
            if result.ok
            else f"TAMPERED: {result.problem}"
        )
        show(result, text, as_json=args.json)
        return EXIT_OK if result.ok else EXIT_FAILED

    return run_async(run())


# --since


_SINCE_FORMS = "expected 30m, 12h, 7d or an ISO date"


def since(text: str) -> float:
    """The argparse type of `--since`: a Unix time, back from when the command
    line is read; anything else is a usage error (exit 2), as for a count."""
    try:
        return parse_since(text, time.time())
    except CoderouterError:
        raise argparse.ArgumentTypeError(f"{text!r}: {_SINCE_FORMS}") from None


def parse_since(text: str, now: float) -> float:
    if m := _DURATION.match(text):
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CoderouterError(f"--since {text!r}: {_SINCE_FORMS}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()
