"""`coderouterd replay ID --diff`: cache usage compared, and a recording cut
at replay.max_record_kb, streamed or not, compared only up to the cut; where
the cut came before any of the answer, the diff says nothing was compared."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
import pytest

from tests.conftest import chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, anthropic_text_stream
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.process import ServeProcess, StartServe, child_env, run_cli
from tests.integration.state.test_state_process import cli_args, post, wait_committed

MESSAGES = [{"role": "user", "content": "hi"}]
# Compresses to almost nothing, so the record is kept under a 1 KB limit.
LONG = "all work and no play " * 150
CUT = "state:\n  replay:\n    max_record_kb: 1\n"
DIFF_HEADING = "--- diff against the recorded response ---\n"


def _answer(text: str, *, stream: bool) -> Reply:
    if stream:
        return Reply(
            events=anthropic_text_stream([text[i : i + 50] for i in range(0, len(text), 50)])
        )
    return Reply(json=anthropic_message(text))


async def _recorded_cut(d: ServeProcess, stream: bool) -> str:
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": stream}
    status, raw, rid = await post(d.url, body)
    assert status == 200 and len(raw) > 1024
    await wait_committed(d, 2)
    with sqlite3.connect(d.state_dir / "coderouterd.db") as db:
        [(truncated,)] = db.execute(
            "SELECT response_truncated FROM replays WHERE request_id = ?", (rid,)
        ).fetchall()
    assert truncated == 1  # the premise: the recording is cut, and kept
    return rid


async def _diff(d: ServeProcess, rid: str, *json: str) -> tuple[int, str]:
    run = await run_cli(
        "replay", rid, "--diff", *json, "--socket", str(d.socket_path), *cli_args(d),
        env=child_env(d.root),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.returncode, run.stdout


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_an_identical_answer_differs_in_nothing_from_a_cut_recording(
    serve_process: StartServe, fake_upstream: FakeUpstream, stream: bool
) -> None:
    answer = _answer(LONG, stream=stream)
    fake_upstream.script(answer, answer, answer)
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url), top=CUT))
    rid = await _recorded_cut(d, stream)
    _, out = await _diff(d, rid, "--json")
    reply = msgspec.json.decode(out)
    assert reply["response"]["text"] == LONG
    assert [c["field"] for c in reply["changes"] if c["field"] != "latency_ms"] == []
    assert reply["recorded_partial"] is True
    _, text = await _diff(d, rid)
    shown = text.split("--- diff against the recorded response ---\n")[1]
    assert shown.startswith("the recorded response was cut at replay.max_record_kb")
    assert "stop_reason:" not in shown and "usage." not in shown and "text" not in shown


async def test_a_cut_recording_still_shows_a_change_before_the_cut(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        _answer(LONG, stream=True), _answer("nothing like it " + LONG, stream=True)
    )
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url), top=CUT))
    rid = await _recorded_cut(d, True)
    _, out = await _diff(d, rid, "--json")
    changes = {c["field"]: c for c in msgspec.json.decode(out)["changes"]}
    assert set(changes) - {"latency_ms"} == {"text"}
    assert LONG.startswith(changes["text"]["before"])
    assert changes["text"]["after"] == "nothing like it " + LONG


async def test_diff_shows_a_change_in_cached_tokens(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """Recorded: 5000 prompt tokens written to the cache; replayed: the same
    5000 read from it, at a tenth of the price."""
    written = anthropic_message("same")
    written["usage"]["cache_creation_input_tokens"] = 5000
    read = anthropic_message("same")
    read["usage"]["cache_read_input_tokens"] = 5000
    fake_upstream.script(Reply(json=written), Reply(json=read))
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url)))
    status, _, rid = await post(d.url, {"model": "m", "max_tokens": 5, "messages": MESSAGES})
    assert status == 200
    await wait_committed(d, 2)
    _, out = await _diff(d, rid, "--json")
    changes = {c["field"]: (c["before"], c["after"]) for c in msgspec.json.decode(out)["changes"]}
    changes.pop("latency_ms", None)
    assert changes == {
        "usage.cache_read_input_tokens": (0, 5000),
        "usage.cache_creation_input_tokens": (5000, 0),
    }


def _changes(reply: dict[str, Any]) -> dict[str, Any]:
    return {c["field"]: c for c in reply["changes"] if c["field"] != "latency_ms"}


def _with_calls(text: str, *paths: str) -> dict[str, Any]:
    """An answer making these calls, then saying `text`."""
    message = anthropic_message(text, stop_reason="tool_use")
    calls = [
        {"type": "tool_use", "id": f"toolu_{i}", "name": "read", "input": {"path": path}}
        for i, path in enumerate(paths)
    ]
    message["content"] = [*calls, *message["content"]]
    return message


async def test_a_cut_unary_recording_still_shows_a_change_before_the_cut(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Reply(json=anthropic_message(LONG)),
        Reply(json=anthropic_message("nothing like it " + LONG)),
        Reply(json=anthropic_message("nothing like it " + LONG)),
    )
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url), top=CUT))
    rid = await _recorded_cut(d, False)
    reply = msgspec.json.decode((await _diff(d, rid, "--json"))[1])
    assert reply["response"]["text"] == "nothing like it " + LONG
    changes = _changes(reply)
    assert set(changes) == {"text"}
    # The recorded side is the text up to the cut.
    before = changes["text"]["before"]
    assert len(before) > 100 and LONG.startswith(before)
    assert reply["recorded_partial"] is True and reply["nothing_compared"] is False
    shown = (await _diff(d, rid))[1].split(DIFF_HEADING)[1]
    assert shown.startswith("the recorded response was cut at replay.max_record_kb")
    assert "+nothing like it all work" in shown


async def test_a_cut_unary_recording_shows_a_change_in_a_call_before_the_cut(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """Two calls, then text past the cut: the first call, whole before the
    cut, is compared in full; the last, by name."""
    fake_upstream.script(
        Reply(json=_with_calls(LONG, "a.py", "c.py")),
        Reply(json=_with_calls(LONG, "b.py", "d.py")),
    )
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url), top=CUT))
    rid = await _recorded_cut(d, False)
    reply = msgspec.json.decode((await _diff(d, rid, "--json"))[1])
    assert reply["response"]["stop_reason"] == "tool_use"
    changes = {f: (c["before"], c["after"]) for f, c in _changes(reply).items()}
    assert changes == {"tool_calls[0].input": ({"path": "a.py"}, {"path": "b.py"})}


async def test_a_unary_recording_cut_before_the_answer_says_nothing_was_compared(
    serve_process: StartServe, fake_upstream: FakeUpstream
) -> None:
    """The upstream's answer, passed through byte for byte, starts with an id
    longer than the cut: the recording holds none of the answer, so no
    change found in it may read as "no differences"."""
    long_id = "msg_" + "0" * 2000
    fake_upstream.script(
        Reply(json=anthropic_message("recorded", message_id=long_id)),
        Reply(json=anthropic_message("replayed", message_id=long_id)),
        Reply(json=anthropic_message("replayed", message_id=long_id)),
    )
    d = await serve_process(chain_yaml(provider_yaml("a", fake_upstream.url), top=CUT))
    rid = await _recorded_cut(d, False)
    reply = msgspec.json.decode((await _diff(d, rid, "--json"))[1])
    assert reply["response"]["text"] == "replayed"
    assert _changes(reply) == {}
    assert reply["recorded_partial"] is True and reply["nothing_compared"] is True
    shown = (await _diff(d, rid))[1].split(DIFF_HEADING)[1]
    assert "nothing of it compared" in shown
    assert "no differences" not in shown
