"""Fixtures for the state tests: a freshly migrated database file and a connection to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest_asyncio

from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate


@pytest_asyncio.fixture
async def db_file(tmp_path: Path) -> Path:
    path = db_path(tmp_path / "state")
    conn = await open_db(path)
    await migrate(conn, discover(), now=1.0)
    await conn.close()
    return path


@pytest_asyncio.fixture
async def conn(db_file: Path) -> AsyncIterator[aiosqlite.Connection]:
    c = await open_db(db_file)
    yield c
    await c.close()
