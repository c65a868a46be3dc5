"""Durable state through the real command line: replay, audit, SIGKILL under load, no secrets."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from coderouterd import __version__
from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli

CLIENT_KEY = "sk-client-0123456789abcdef-do-not-store"
UPSTREAM_KEY = "sk-upstream-fedcba9876543210-do-not-store"
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def cli_args(d: ServeProcess) -> list[str]:
    assert d.config_path is not None
    return ["--config", str(d.config_path)]


async def post(url: str, body: dict, **headers: str) -> tuple[int, bytes, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY, **headers}
        ) as resp,
    ):
        return resp.status, await resp.read(), resp.headers.get("x-request-id", "")


async def wait_committed(d: ServeProcess, rows: int, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        run = await run_cli(
            "ctl", "status", "--json", "--socket", str(d.socket_path), env=child_env(d.root)
        )
        state = msgspec.json.decode(run.stdout)["state"]
        if state["committed_rows"] >= rows and state["queue_depth"] == 0:
            return
        assert time.monotonic() < deadline, f"state not committed: {state}"
        await asyncio.sleep(0.05)


async def test_replay_round_trip_with_diff(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(events=anthropic_text_stream(["first ", "answer"])),
        Reply(events=anthropic_text_stream(["second answer"], output_tokens=9)),
        Reply(events=anthropic_text_stream(["from b"])),
    )
    d = await serve_process(
        chain_yaml(provider_yaml("a", fake_upstream.url), provider_yaml("b", fake_upstream.url))
    )
    status, _, rid = await post(d.url, {**BODY, "stream": True})
    assert status == 200
    await wait_committed(d, 2)
    env = child_env(d.root)
    listing = await run_cli("replay", "list", "--json", *cli_args(d), env=env)
    assert [r["request_id"] for r in msgspec.json.decode(listing.stdout)] == [rid]
    run = await run_cli(
        "replay", rid, "--diff", "--socket", str(d.socket_path), *cli_args(d), env=env
    )
    assert run.returncode == 0, run.stderr
    assert "second answer" in run.stdout
    assert "-first answer" in run.stdout and "+second answer" in run.stdout
    assert "output_tokens" in run.stdout
    # --provider sends to that provider alone.
    run = await run_cli(
        "replay",
        rid,
        "--provider",
        "b",
        "--json",
        "--socket",
        str(d.socket_path),
        *cli_args(d),
        env=env,
    )
    reply = msgspec.json.decode(run.stdout)
    assert reply["status"] == 200 and reply["response"]["text"] == "from b", reply
    assert fake_upstream.requests[-1].json["model"] == "b-model"
    # The recorded headers were redacted: the client's key was never replayed.
    assert "x-api-key" not in fake_upstream.requests[-1].headers


async def test_audit_verify_catches_an_edited_and_a_deleted_row(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    env = child_env(d.root)
    for _ in range(2):
        await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=env)
    d.send_signal(signal.SIGTERM)
    assert await d.wait(timeout=10) == 0
    ok = await run_cli("audit", "verify", *cli_args(d), env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 6 rows"), ok.stdout + ok.stderr
    tail = await run_cli("audit", "tail", "--json", *cli_args(d), env=env)
    events = [r["event"] for r in msgspec.json.decode(tail.stdout)]
    assert events == [
        "daemon.started",
        "ctl.action",
        "config.reloaded",
        "ctl.action",
        "config.reloaded",
        "daemon.stopped",
    ]
    db = d.state_dir / "coderouterd.db"
    with sqlite3.connect(db) as conn:
        conn.execute('UPDATE audit SET fields = \'{"action":"reload","uid":0}\' WHERE seq = 3')
    edited = await run_cli("audit", "verify", *cli_args(d), env=env)
    assert edited.returncode == 1 and "row 3 was edited" in edited.stdout
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit WHERE seq IN (2, 3)")
    deleted = await run_cli("audit", "verify", "--json", *cli_args(d), env=env)
    result = msgspec.json.decode(deleted.stdout)
    assert (
        deleted.returncode == 1 and result["first_bad_seq"] == 2 and "missing" in result["problem"]
    )


# A non-default window, and batches too large to fill, so the window alone
# decides when records are committed. The slack covers committing a batch
# (on a slow disk a WAL checkpoint's fsync can hold a commit for hundreds of
# milliseconds) and scheduling on a loaded machine.
WINDOW_MS = 200
SLACK_S = (WINDOW_MS + 1000) / 1000
STATE = f"state:\n  commit_window_ms: {WINDOW_MS}\n  commit_batch: 1000000\n"


async def ctl_status(d: ServeProcess) -> dict[str, Any]:
    run = await run_cli(
        "ctl", "status", "--json", "--socket", str(d.socket_path), env=child_env(d.root)
    )
    assert run.returncode == 0, run.stderr
    reply: dict[str, Any] = msgspec.json.decode(run.stdout)
    return reply


def spent(status: dict[str, Any], provider: str) -> float:
    [budget] = [b for b in status["budgets"] if b["provider"] == provider]
    return float(budget["spent_usd"])


async def test_sigkill_under_load_loses_at_most_the_window(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    priced = "api_key_env: UPSTREAM_KEY\ncost:\n  input_tokens_per_million: 1\n  output_tokens_per_million: 2\n"
    config = chain_yaml(
        provider_yaml("a", fake_upstream.url, extra=priced),
        top=STATE,
    )
    d = await serve_process(config, env={"UPSTREAM_KEY": UPSTREAM_KEY})
    completed: list[tuple[str, float]] = []
    stop_at = time.monotonic() + 2.5

    async def client() -> None:
        while time.monotonic() < stop_at:
            status, _, rid = await post(d.url, BODY)
            if status == 200:
                completed.append((rid, time.monotonic()))

    await asyncio.gather(*(client() for _ in range(8)))
    killed_at = time.monotonic()
    d.send_signal(signal.SIGKILL)
    await d.wait(timeout=5)
    assert len(completed) > 100
    db = d.state_dir / "coderouterd.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT id FROM requests")}
        # Every row whole: its provider, status and cost, and its one attempt.
        broken = conn.execute(
            "SELECT count(*) FROM requests WHERE provider IS NOT 'a' OR status != 200"
            " OR cost_usd IS NULL OR (SELECT count(*) FROM attempts WHERE request_id = id) != 1"
        ).fetchone()[0]
        attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
        budget_rows, budget_cost = conn.execute(
            "SELECT requests, cost_usd FROM budget_totals WHERE provider = 'a'"
        ).fetchone()
        row_cost = conn.execute(
            "SELECT sum(cost_usd) FROM requests WHERE provider = 'a'"
        ).fetchone()[0]
    assert (broken, attempts) == (0, len(stored))
    # Anything answered more than a window (and the slack) before the kill is on disk.
    settled = {rid for rid, at in completed if at < killed_at - SLACK_S}
    assert len(settled) > 100 and settled <= stored
    # Request rows and budget totals are committed together: they agree.
    assert budget_rows == len(stored) and abs(budget_cost - row_cost) < 1e-9
    # Restarted on the same database, the daemon's month spend is that of the rows.
    again = await serve_process(config, env={"UPSTREAM_KEY": UPSTREAM_KEY}, state_root=d.root)
    assert spent(await ctl_status(again), "a") == round(row_cost, 6)
    status, _, _ = await post(again.url, BODY)
    assert status == 200
    assert spent(await ctl_status(again), "a") > round(row_cost, 6)
    # No API key, the daemon's or the client's, is anywhere in the database files.
    for path in d.state_dir.iterdir():
        data = path.read_bytes()
        assert UPSTREAM_KEY.encode() not in data and CLIENT_KEY.encode() not in data, path


async def test_a_full_queue_is_counted_in_ctl_status_and_logged(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    config = chain_yaml(provider_yaml("a", fake_upstream.url), top="state:\n  queue_size: 1\n")
    d = await serve_process(config)
    since = d.mark()
    replies = await asyncio.gather(*(post(d.url, BODY) for _ in range(20)))
    assert [status for status, _, _ in replies] == [200] * 20
    dropped = (await ctl_status(d))["state"]["dropped"]
    assert dropped > 0
    logged = await d.wait_for_event("state.records_dropped", since=since)
    assert logged["queue_size"] == 1 and 1 <= logged["dropped"] <= dropped


async def test_audit_events_carry_the_digests_and_the_callers_uid(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    chain = chain_yaml(provider_yaml("a", fake_upstream.url))
    d = await serve_process(chain)
    env = child_env(d.root)
    started_digest = (await ctl_status(d))["config_digest"]
    d.write_config("state:\n  retention_days: 3\n" + chain)
    run = await run_cli("ctl", "reload", "--json", "--socket", str(d.socket_path), env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    reloaded_digest = msgspec.json.decode(run.stdout)["config_digest"]
    assert reloaded_digest != started_digest
    d.write_config("providers: []\n")
    rejected = await run_cli("ctl", "reload", "--socket", str(d.socket_path), env=env)
    assert rejected.returncode == 1
    d.send_signal(signal.SIGTERM)
    assert await d.wait(timeout=10) == 0
    # The CLI reads the state directory from the config: a valid one again.
    d.write_config(chain)
    tail = await run_cli("audit", "tail", "--json", *cli_args(d), env=env)
    rows = [(r["event"], r["fields"]) for r in msgspec.json.decode(tail.stdout)]
    path = str(d.config_path)
    uid = os.getuid()
    assert rows == [
        ("daemon.started", {"version": __version__, "pid": d.pid, "config_path": path,
                            "config_digest": started_digest}),
        ("ctl.action", {"action": "reload", "uid": uid}),
        ("config.reloaded", {"path": path, "digest": reloaded_digest,
                             "previous_digest": started_digest}),
        ("ctl.action", {"action": "reload", "uid": uid}),
        ("config.reload_rejected", {"path": path, "running_digest": reloaded_digest,
                                    "problems": rows[4][1]["problems"]}),
        ("daemon.stopped", {"pid": d.pid}),
    ]  # fmt: skip
    assert rows[4][1]["problems"] >= 1


async def test_db_status_and_migrate(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    env = child_env(d.root)
    run = await run_cli("db", "status", "--json", *cli_args(d), env=env)
    st = msgspec.json.decode(run.stdout)
    assert run.returncode == 0 and st["schema_version"] == st["latest"] >= 1 and st["pending"] == []
    assert st["integrity"] == ["ok"]
    run = await run_cli("db", "migrate", *cli_args(d), env=env)
    assert run.returncode == 0 and "up to date" in run.stdout
    run = await run_cli("ctl", "status", "--json", "--socket", str(d.socket_path), env=env)
    state = msgspec.json.decode(run.stdout)["state"]
    assert state["path"] == str(d.state_dir / "coderouterd.db") and state["size_bytes"] > 0


async def test_a_database_newer_than_the_code_is_refused(
    serve_process: StartServe, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    d.send_signal(signal.SIGTERM)
    assert await d.wait(timeout=10) == 0
    with sqlite3.connect(d.state_dir / "coderouterd.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', 0)")
    run = await run_cli("serve", *cli_args(d), env=child_env(d.root))
    assert run.returncode == 1
    assert "newer than this coderouterd" in run.stderr
