"""`coderouterd replay ID` of a record a damaged blob or column makes
unreadable (what retention counts as `unreadable_replays`) is refused in one
line, exit 1."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


# A zlib header (0x78 0x9c) followed by bytes that are no deflate stream.
NOT_ZLIB = b"\x78\x9c" + b"\xff" * 40


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("request_body", NOT_ZLIB, "request body"),
        ("response_body", NOT_ZLIB, "response body"),
        ("request_headers", "{not json", "request headers"),
    ],
    ids=["request_body", "response_body", "request_headers"],
)
async def test_a_damaged_record_is_refused_in_one_line(
    serve_process: StartServe, fake_upstream: FakeUpstream, column: str, value: object, what: str
) -> None:
    # Long enough that the response is stored zlib-compressed.
    fake_upstream.default = Reply(json=anthropic_message("ok " * 600))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, _, rid = await post(d.url, BODY)
    assert status == 200
    await wait_committed(d, 2)
    with sqlite3.connect(d.state_dir / "coderouterd.db") as db:
        db.execute(
            f"UPDATE replays SET {column} = ? WHERE request_id = ?",  # noqa: S608 - a fixed column
            (value, rid),
        )
    run = await run_cli(
        "replay", rid, "--socket", str(d.socket_path), *cli_args(d), env=child_env(d.root)
    )
    assert run.returncode == 1, run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith(
        f"coderouterd: the replay record of {rid} is damaged: its {what} cannot be read ("
    ), line
    assert len(fake_upstream.requests) == 1  # nothing sent
