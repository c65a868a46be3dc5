"""Any sequence of turns, across conversations, reads back byte for byte."""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp
import pytest

from coderouterd.state.records import BODY_DELTA
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.replay_sessions import (
    compact,
    formats,
    msg,
    post_raw,
    stored_bodies,
    text,
)


class Conv:
    def __init__(self, rng: random.Random, n: int) -> None:
        self.rng = rng
        self.body: dict[str, Any] = {
            "model": "claude-x",
            "max_tokens": 100,
            "system": [{"type": "text", "text": f"conv {n} " + text(rng, 3000)}],
            "tools": [
                {"name": f"T{i}", "description": text(rng, 60), "input_schema": {"type": "object"}}
                for i in range(12)
            ],
            "messages": [msg(rng, "user", 2000)],
            "metadata": {"user_id": f"session-{n}"},
        }

    def step(self) -> str:
        rng, m = self.rng, self.body["messages"]
        action = rng.choice(
            [
                "append",
                "append",
                "append",
                "append",
                "resend",
                "edit",
                "branch",
                "system",
                "tools",
                "breakpoint",
                "huge",
                "drop_field",
            ]
        )
        if action == "append":
            if m[-1]["role"] == "user":
                m.append(msg(rng, "assistant", rng.choice([100, 800, 3000])))
            m.append(msg(rng, "user", rng.choice([50, 600, 2500])))
        elif action == "edit" and len(m) > 1:
            i = rng.randrange(len(m))
            m[i]["content"][0]["text"] += " edited"
        elif action == "branch" and len(m) > 3:
            k = rng.randrange(1, len(m) - 1)
            del m[k:]
            if m[-1]["role"] == "user":
                m.append(msg(rng, "assistant", 300))
            m.append(msg(rng, "user", 400))
        elif action == "system":
            self.body["system"][0]["text"] += " more"
        elif action == "tools":
            self.body["tools"].append({"name": f"X{len(self.body['tools'])}", "input_schema": {}})
        elif action == "breakpoint":
            for x in m:
                for c in x["content"]:
                    c.pop("cache_control", None)
            m[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        elif action == "huge" and len(json.dumps(self.body)) < 300_000:
            m.append(msg(rng, "assistant", 100))
            m.append(msg(rng, "user", 150_000))
        elif action == "drop_field":
            self.body.pop("metadata", None) if rng.random() < 0.5 else self.body.setdefault(
                "temperature", 0.5
            )
        return action


CONFIG_TOP = "state:\n  commit_window_ms: 5\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_interleaved_conversations_read_back_byte_for_byte(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream, seed: int
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url), top=CONFIG_TOP))
    rng = random.Random(seed)
    convs = [Conv(rng, i) for i in range(5)]
    sent: dict[str, bytes] = {}
    log: list[tuple[str, int, str]] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(120):
            i = rng.randrange(len(convs))
            action = convs[i].step()
            raw = compact(convs[i].body, ascii_only=rng.random() < 0.2)
            status, rid = await post_raw(http, d.url, raw)
            assert status == 200
            sent[rid] = raw
            log.append((rid, i, action))
    stored = await stored_bodies(d)
    fmts = await formats(d)
    bad = [
        (rid, i, action, fmts.get(rid)) for rid, i, action in log if stored.get(rid) != sent[rid]
    ]
    if bad:
        rid = bad[0][0]
        got, want = stored.get(rid), sent[rid]
        if isinstance(got, bytes):
            a, b = json.loads(got), json.loads(want)
            for k in set(a) | set(b):
                if a.get(k) != b.get(k):
                    print(
                        "FIELD",
                        k,
                        json.dumps(a.get(k))[:3000],
                        "\n----\n",
                        json.dumps(b.get(k))[:3000],
                    )
        else:
            print("ERR", got)
    assert not bad, bad[:5]
    assert sum(1 for f, _ in fmts.values() if f == BODY_DELTA) > 20


async def test_more_conversations_than_the_memos_hold_read_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url), top=CONFIG_TOP))
    rng = random.Random(7)
    convs = [Conv(rng, i) for i in range(80)]
    sent: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as http:
        for r in range(4):
            order = list(range(len(convs)))
            if r % 2:
                order.reverse()
            for i in order:
                c = convs[i]
                m = c.body["messages"]
                if m[-1]["role"] == "user":
                    m.append(msg(rng, "assistant", 300))
                m.append(msg(rng, "user", 300))
                raw = compact(c.body)
                status, rid = await post_raw(http, d.url, raw)
                assert status == 200
                sent[rid] = raw
    stored = await stored_bodies(d)
    assert {rid: stored.get(rid) == raw for rid, raw in sent.items()} == {rid: True for rid in sent}


async def test_a_chain_past_the_depth_limit_with_moving_breakpoints_reads_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url), top=CONFIG_TOP))
    rng = random.Random(11)
    c = Conv(rng, 0)
    sent: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as http:
        for n in range(150):
            m = c.body["messages"]
            for x in m:
                for part in x["content"]:
                    part.pop("cache_control", None)
            if m[-1]["role"] == "user":
                m.append(msg(rng, "assistant", 200))
            m.append(msg(rng, "user", 100))
            m[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
            if n % 37 == 0:
                # resend unchanged (a retry)
                raw = compact(c.body)
                status, rid = await post_raw(http, d.url, raw)
                sent[rid] = raw
            raw = compact(c.body)
            status, rid = await post_raw(http, d.url, raw)
            assert status == 200
            sent[rid] = raw
    stored = await stored_bodies(d)
    wrong = [rid for rid in sent if stored.get(rid) != sent[rid]]
    assert not wrong
    fmts = await formats(d)
    # chains bounded
    depth: dict[str, int] = {}

    def depth_of(rid: str) -> int:
        if rid not in depth:
            _, base = fmts[rid]
            depth[rid] = 0 if base is None else depth_of(base) + 1
        return depth[rid]

    assert max(depth_of(r) for r in fmts) <= 64


async def test_spaced_and_compact_bodies_mixed_in_one_conversation(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url), top=CONFIG_TOP))
    rng = random.Random(5)
    c = Conv(rng, 0)
    sent: dict[str, tuple[bytes, bool]] = {}
    async with aiohttp.ClientSession() as http:
        for n in range(30):
            c.step()
            spaced = n % 3 == 1
            raw = json.dumps(c.body).encode() if spaced else compact(c.body)
            status, rid = await post_raw(http, d.url, raw)
            assert status == 200
            sent[rid] = (raw, spaced)
    stored = await stored_bodies(d)
    for rid, (raw, spaced) in sent.items():
        got = stored[rid]
        assert isinstance(got, bytes), got
        assert json.loads(got) == json.loads(raw)
        if not spaced:
            assert got == raw, rid


async def test_openai_and_anthropic_interleaved_read_back(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url), top=CONFIG_TOP))
    rng = random.Random(9)
    sys_text = text(rng, 6000)
    oa: dict[str, Any] = {"model": "gpt-x", "messages": [{"role": "system", "content": sys_text}]}
    an = Conv(rng, 1)
    # Same system text as openai's system message
    an.body["system"] = [{"type": "text", "text": sys_text}]
    sent: dict[str, bytes] = {}
    async with aiohttp.ClientSession() as http:
        for n in range(40):
            if n % 2:
                oa["messages"].append({"role": "user", "content": text(rng, 500)})
                raw = compact(oa)
                status, rid = await post_raw(http, d.url, raw, "/v1/chat/completions")
                oa["messages"].append({"role": "assistant", "content": "ok"})
            else:
                an.step()
                raw = compact(an.body)
                status, rid = await post_raw(http, d.url, raw)
            assert status == 200, (n, status)
            sent[rid] = raw
    stored = await stored_bodies(d)
    assert [rid for rid in sent if stored.get(rid) != sent[rid]] == []
