"""`coderouterd db` and `coderouterd audit` on a database file, through the real command line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.records import AuditEvent
from coderouterd.state.writer import Writer
from tests.conftest import chain_yaml, provider_yaml
from tests.integration.process import child_env, render_config, run_cli
from tests.integration.state.support_db import ManualClock


class Setup:
    """A config file naming a state directory, and the environment to run the CLI in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.db = db_path(self.state_dir)
        self.config = root / "config.yaml"
        server = {"state_dir": str(self.state_dir), "control_socket": str(root / "ctl.sock")}
        self.config.write_text(
            render_config(server, chain_yaml(provider_yaml("a", "http://127.0.0.1:9")))
        )
        self.env = child_env(root)

    async def cli(self, *args: str) -> tuple[int, str]:
        run = await run_cli(*args, "--config", str(self.config), env=self.env)
        return run.returncode, run.stdout + run.stderr


@pytest.fixture
def setup(short_dir: Path) -> Setup:
    return Setup(short_dir)


async def test_db_migrate_applies_what_an_older_database_lacks(setup: Setup) -> None:
    shipped = discover()
    conn = await open_db(setup.db)
    await migrate(conn, shipped[:1], now=1.0)
    await conn.execute(
        "INSERT INTO requests (id, ts, dialect, profile, status, stream, total_ms)"
        " VALUES ('old', 1.0, 'anthropic', 'default', 200, 0, 5.0)"
    )
    await conn.close()
    names = [f"{m.version:04d}_{m.name}" for m in shipped]

    code, out = await setup.cli("db", "status", "--json")
    before = msgspec.json.decode(out)
    assert code == 0, out
    assert (before["schema_version"], before["pending"]) == (1, names[1:])
    code, out = await setup.cli("db", "migrate", "--json")
    assert code == 0 and msgspec.json.decode(out) == {"applied": names[1:]}, out
    code, out = await setup.cli("db", "status", "--json")
    after = msgspec.json.decode(out)
    assert (after["schema_version"], after["latest"], after["pending"]) == (
        shipped[-1].version,
        shipped[-1].version,
        [],
    )
    assert after["integrity"] == ["ok"]
    with sqlite3.connect(setup.db) as db:
        assert db.execute("SELECT id FROM requests").fetchall() == [("old",)]
        assert db.execute("SELECT count(*) FROM replay_pieces").fetchone() == (0,)
    code, out = await setup.cli("db", "migrate")
    assert code == 0 and "up to date" in out


async def test_db_migrate_makes_no_database_where_there_is_none(setup: Setup) -> None:
    """A mistyped state_dir must not get a new, empty database."""
    code, out = await setup.cli("db", "migrate")
    assert code == 1 and "no state database at" in out and "Traceback" not in out
    assert not setup.db.exists()


async def test_readers_of_an_older_database_say_to_migrate_it(setup: Setup) -> None:
    # A coderouterd upgraded while its daemon still runs the old one.
    shipped = discover()
    conn = await open_db(setup.db)
    await migrate(conn, shipped[:1], now=1.0)
    await conn.close()
    for command in (["requests"], ["usage"], ["replay", "list"]):
        code, out = await setup.cli(*command)
        assert code == 1, out
        assert f"has schema version 1, this coderouterd reads {shipped[-1].version}" in out
        assert "run `coderouterd db migrate`" in out
        assert "Traceback" not in out
    # The audit log and `db status` read any schema.
    code, out = await setup.cli("audit", "tail")
    assert code == 0, out
    code, out = await setup.cli("db", "status")
    assert code == 0, out


async def test_readers_of_a_newer_database_say_to_upgrade(setup: Setup) -> None:
    conn = await open_db(setup.db)
    await migrate(conn, discover(), now=1.0)
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 2.0)"
    )
    await conn.commit()
    await conn.close()
    code, out = await setup.cli("requests")
    assert code == 1
    assert "schema version 999, newer than this coderouterd knows" in out


async def write_audit(path: Path, n: int) -> None:
    conn = await open_db(path)
    await migrate(conn, discover(), now=1.0)
    writer = Writer(conn, clock=ManualClock())
    for i in range(n):
        writer.submit(AuditEvent(ts=100.0 + i, event="ctl.action", fields={"i": i}))
    await writer.close()
    await conn.close()


async def test_audit_verify_with_the_last_seq_noted_catches_a_cut_tail(setup: Setup) -> None:
    await write_audit(setup.db, 5)
    code, out = await setup.cli("audit", "tail", "-n", "2", "--json")
    assert code == 0 and [r["seq"] for r in msgspec.json.decode(out)] == [4, 5]
    code, out = await setup.cli("audit", "verify", "--json")
    noted = msgspec.json.decode(out)
    assert code == 0 and (noted["ok"], noted["rows_checked"], noted["last_seq"]) == (True, 5, 5)
    code, out = await setup.cli("audit", "verify")
    assert code == 0 and out.startswith("ok: 5 rows, chain intact, last seq 5"), out
    with sqlite3.connect(setup.db) as db:
        db.execute("DELETE FROM audit WHERE seq >= 4")
    # What is left is a valid chain: only the noted seq shows the cut.
    code, out = await setup.cli("audit", "verify")
    assert code == 0 and "last seq 3" in out, out
    code, out = await setup.cli("audit", "verify", "--expect-last-seq", "5", "--json")
    cut = msgspec.json.decode(out)
    assert code == 1, out
    assert (cut["ok"], cut["first_bad_seq"], cut["last_seq"]) == (False, 4, 3)
    assert cut["problem"] == "row 4 is missing (deleted?); the log should reach row 5"
    code, out = await setup.cli("audit", "verify", "--expect-last-seq", "3")
    assert code == 0, out
