"""What opening the database reads for the daemon's start, in one go.

This month's spend per provider (the budget book starts from it) and the
budget thresholds its audit log already holds for that month; the request
ids clients chose lately; the providers excluded when the daemon stopped.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

import aiosqlite

from coderouterd.routing.budget import BudgetBook
from coderouterd.state import reads
from coderouterd.state.db import read_error
from coderouterd.state.records import ExclusionSet


class Startup(NamedTuple):
    # The UTC month whose spend, and whose thresholds audited, `budget` holds.
    month: str
    budget: BudgetBook
    client_ids: tuple[str, ...]
    exclusions: tuple[ExclusionSet, ...]


async def read_startup(conn: aiosqlite.Connection, path: Path, month: str) -> Startup:
    """Everything the start needs from the database at `path`, for `month`."""
    try:
        totals = await reads.month_totals(conn, month)
        audited = await reads.thresholds_audited(conn, month)
        client_ids = await reads.client_request_ids(conn, reads.CLIENT_IDS_KEPT)
        exclusions = await reads.exclusions(conn)
    except sqlite3.Error as e:
        # A damaged page the migration never touched shows up here.
        raise read_error(path, e) from e
    return Startup(
        month=month,
        budget=BudgetBook(
            {(p, month): t.cost_usd for p, t in totals.items()},
            audited=((p, month, budget, percent) for p, budget, percent in audited),
        ),
        client_ids=tuple(client_ids),
        exclusions=tuple(exclusions),
    )
