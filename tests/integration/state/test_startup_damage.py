"""Start-up on a state database with a damaged page in what it reads after
migrating (the month's spend, the client request ids, the exclusions): the
damage is named, with what to do about it, as the database commands name it;
`serve` says so in one line and exits 1, with no traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coderouterd.config.model import StateConfig
from coderouterd.state.db import StateError, db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.service import StateService
from coderouterd.telemetry.logging import get_logger
from tests.conftest import chain_yaml, provider_yaml
from tests.integration.process import child_env, render_config, run_cli
from tests.integration.state.support_db import ManualClock

pytestmark = pytest.mark.timeout(60)


async def migrated(path: Path) -> None:
    conn = await open_db(path)
    await migrate(conn, discover(), now=1.0)
    await conn.close()


def damage(db: Path, table: str) -> None:
    """Garbage over the root pages of one table and its indexes, the rest
    intact (a sector lost on disk, a copy cut short)."""
    with sqlite3.connect(db) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        roots = [
            r[0]
            for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = ?", (table,))
        ]
    conn.close()
    data = bytearray(db.read_bytes())
    for root in roots:
        data[(root - 1) * page_size : root * page_size] = b"\xab" * page_size
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damaged", ["budget_totals", "requests", "exclusions"])
async def test_opening_a_database_damaged_where_start_up_reads_names_the_damage(
    tmp_path: Path, damaged: str
) -> None:
    state = tmp_path / "state"
    db = db_path(state)
    await migrated(db)
    damage(db, damaged)

    try:
        service = await StateService.open(
            state, StateConfig(), clock=ManualClock(), log=get_logger()
        )
    except StateError as exc:
        said = str(exc)
    else:
        await service.close()
        pytest.fail(f"opened a database whose {damaged} is damaged")
    assert said.startswith(f"{db} is damaged"), said
    assert "coderouterd db status" in said


async def test_serve_on_a_damaged_database_says_so_in_one_line_and_exits_1(
    short_dir: Path,
) -> None:
    state = short_dir / "state"
    db = db_path(state)
    await migrated(db)
    damage(db, "requests")
    config = short_dir / "config.yaml"
    config.write_text(
        render_config(
            {"port": 0, "state_dir": str(state), "control_socket": str(short_dir / "ctl.sock")},
            chain_yaml(provider_yaml("a", "http://127.0.0.1:9")),
        )
    )

    run = await run_cli("serve", "--config", str(config), env=child_env(short_dir), timeout=20)

    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    [said] = [line for line in run.stderr.splitlines() if not line.startswith("{")]
    assert said.startswith(f"coderouterd: {db} is damaged"), run.stderr
