"""Bodies in other forms than the SDKs' compact JSON, read back as the README says."""

from __future__ import annotations

import json
import random

import aiohttp

from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.replay_sessions import compact, msg, post_raw, stored_bodies, text


def base_body(rng: random.Random) -> dict:
    return {
        "model": "claude-x",
        "max_tokens": 100,
        "system": [{"type": "text", "text": text(rng, 3000)}],
        "messages": [msg(rng, "user", 3000)],
    }


async def test_a_body_sent_with_spacing_reads_back_the_same_json(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    """What the README says of spaced bodies: the same JSON, not the same bytes."""
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))
    rng = random.Random(2)
    sent: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as http:
        for raw in (
            json.dumps(base_body(rng)).encode(),  # Python's default separators
            json.dumps(base_body(rng), indent=2).encode(),
            b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}\n',
        ):
            status, rid = await post_raw(http, d.url, raw)
            assert status == 200
            sent[rid] = raw
    stored = await stored_bodies(d)
    for rid, raw in sent.items():
        assert json.loads(stored[rid]) == json.loads(raw)
        assert b"\n" not in stored[rid][:20]  # its spacing is not kept


async def test_escaped_and_unicode_values_in_a_delta_chain_read_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))
    rng = random.Random(4)
    body = base_body(rng)
    sent: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as http:
        for n in range(12):
            body["messages"].append({"role": "assistant", "content": 'é\u2028\\/"😀' * (n + 1)})
            body["messages"].append(
                {"role": "user", "content": [{"type": "text", "text": "x\u0000y</script>" * 50}]}
            )
            # Escaped (ensure_ascii) and raw UTF-8 turns alternate in one conversation.
            raw = (
                compact(body, ascii_only=n % 2 == 0).replace(b"/", b"\\/")
                if n % 4 == 1
                else compact(body, ascii_only=n % 2 == 0)
            )
            status, rid = await post_raw(http, d.url, raw)
            assert status == 200
            sent[rid] = raw
    stored = await stored_bodies(d)
    assert {rid: stored[rid] == raw for rid, raw in sent.items()} == {rid: True for rid in sent}
