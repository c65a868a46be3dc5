"""An `exclusions` row change and its `provider.excluded` / `provider.restored`
audit event are committed in one transaction, or lost together when the
write fails: wherever the writer cuts its batches, never the row without
the event that explains it (README, What is stored where)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import pytest_asyncio

from coderouterd.clock import SystemClock
from coderouterd.config.model import StateConfig
from coderouterd.state.db import open_db
from coderouterd.state.service import StateService
from coderouterd.telemetry.logging import get_logger
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply


def refuse(db: Path, event: str) -> None:
    """Have the database refuse audit rows of `event`, as a full disk would refuse a write."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.event = '{event}'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    conn.close()


async def stored(db: Path, event: str) -> tuple[list[str], int]:
    """The providers excluded, and how many `event` rows the audit log holds."""
    conn = await open_db(db, readonly=True)
    try:
        rows = await conn.execute_fetchall("SELECT provider FROM exclusions ORDER BY provider")
        audited = await conn.execute_fetchall(
            "SELECT count(*) FROM audit WHERE event = ?", (event,)
        )
    finally:
        await conn.close()
    return [r[0] for r in rows], audited[0][0]


@pytest_asyncio.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateService]:
    # Two records a batch: the cut falls right after any record that follows one.
    service = await StateService.open(
        tmp_path / "state", StateConfig(commit_batch=2), clock=SystemClock(), log=get_logger()
    )
    yield service
    await service.close()


def exclude(state: StateService) -> None:
    state.provider_excluded(
        "a",
        reason="manual",
        consecutive_failures=0,
        threshold=3,
        last_reason=None,
        last_status=None,
        episode=1,
    )


def restore(state: StateService) -> None:
    state.provider_restored("a", via="manual", excluded_for_s=5.0, probes_failed=0, episode=1)


class Case(NamedTuple):
    before: Callable[[StateService], None] | None
    change: Callable[[StateService], None]
    event: str
    # The providers excluded before the change, and after it.
    unchanged: list[str]
    changed: list[str]


@pytest.mark.parametrize(
    "case",
    [
        Case(None, exclude, "provider.excluded", [], ["a"]),
        Case(exclude, restore, "provider.restored", ["a"], []),
    ],
    ids=["excluded", "restored"],
)
async def test_a_batch_cut_never_parts_an_exclusion_change_from_its_audit_event(
    state: StateService, case: Case
) -> None:
    before, change, event, unchanged, changed = case
    if before is not None:
        before(state)
        await state.writer.flush()
    refuse(state.path, event)
    # One record ahead of the change: batches of two would cut between its row
    # and its event, were they two records.
    state.audit("test.load")
    change(state)
    await state.writer.flush()
    assert await stored(state.path, event) == (unchanged, 0)

    # Written whole once the database takes the event.
    with sqlite3.connect(state.path) as conn:
        conn.execute("DROP TRIGGER refuse")
    conn.close()
    state.audit("test.load")
    change(state)
    await state.writer.flush()
    assert await stored(state.path, event) == (changed, 1)


async def test_a_provider_excluded_by_hand_under_load_is_never_left_without_its_event(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    await d.state.writer.flush()
    refuse(d.state.path, "provider.excluded")
    # 254 events queued first: with the `ctl.action` event of the exclude, a
    # default batch of 256 would end between the row and its event, were they
    # two records.
    for i in range(254):
        d.state.audit("test.load", n=i)
    reply = await d.daemon.provider_action("exclude", "a", uid=0)
    assert reply.ok and reply.changed
    await d.state.writer.flush()

    assert await stored(d.state.path, "provider.excluded") in ((["a"], 1), ([], 0))
