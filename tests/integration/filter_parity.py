"""The same upstream answer scripted whole and streamed, read back through
both client dialects (test_filter_parity.py)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.fakes.upstream import Reply

CREATED = 1_700_000_000
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
NAMES = ("Read", "Bash")
A_TOOLS: list[Any] = [{"name": n, "description": n, "input_schema": SCHEMA} for n in NAMES]
O_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": n, "parameters": SCHEMA}} for n in NAMES
]
MESSAGES: list[Any] = [{"role": "user", "content": "fix it"}]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def usage_chunk(prompt: int = 11, completion: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "m",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def stream_reply(
    deltas: list[dict[str, Any]], finish: str = "stop", *, usage: bool = True
) -> Reply:
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk(d) for d in deltas]
    chunks.append(chunk({}, finish))
    if usage:
        chunks.append(usage_chunk())
    return Reply(dialect="openai", events=[("", c) for c in chunks])


def merged_message(deltas: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole message the deltas make, as a server answering unary writes it."""
    content = "".join(d.get("content") or "" for d in deltas)
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    calls: dict[tuple[int, str], dict[str, Any]] = {}
    last: dict[int, str] = {}
    for d in deltas:
        for tc in d.get("tool_calls") or []:
            index = tc.get("index", 0)
            if tc.get("id"):
                last[index] = tc["id"]
            e = calls.setdefault(
                (index, last.get(index, "")),
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            e["id"] = e["id"] or tc.get("id") or ""
            f = tc.get("function") or {}
            e["function"]["name"] += f.get("name") or ""
            e["function"]["arguments"] += f.get("arguments") or ""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = list(calls.values())
    return message


def unary_reply(deltas: list[dict[str, Any]], finish: str = "stop", *, usage: bool = True) -> Reply:
    body: dict[str, Any] = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "created": CREATED,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": merged_message(deltas),
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    return Reply(dialect="openai", json=body)


async def sse(url: str, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every (event, data) frame of a streamed answer, data decoded."""
    out: list[tuple[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.post(url + path, json=body) as resp:
        assert resp.status == 200, await resp.text()
        raw = (await resp.read()).decode()
    for frame in raw.split("\n\n"):
        name, data = "", []
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            text = "\n".join(data)
            out.append((name, text if text == "[DONE]" else json.loads(text)))
    return out


async def post(url: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url + path, json=body) as resp:
        return resp.status, await resp.json()


def anthropic_of_stream(frames: list[tuple[str, Any]]) -> dict[str, Any]:
    """An Anthropic stream folded into the message it makes."""
    blocks: list[dict[str, Any]] = []
    message: dict[str, Any] = {}
    for name, d in frames:
        if name == "message_start":
            message = dict(d["message"])
        elif name == "content_block_start":
            b = dict(d["content_block"])
            if b["type"] == "tool_use":
                b["_json"] = ""
            blocks.append(b)
        elif name == "content_block_delta":
            dl, b = d["delta"], blocks[d["index"]]
            if dl["type"] == "text_delta":
                b["text"] += dl["text"]
            elif dl["type"] == "thinking_delta":
                b["thinking"] += dl["thinking"]
            elif dl["type"] == "input_json_delta":
                b["_json"] += dl["partial_json"]
        elif name == "message_delta":
            message.update(d["delta"])
            message["usage"] = {**message.get("usage", {}), **d.get("usage", {})}
    for b in blocks:
        if b["type"] == "tool_use":
            b["input"] = json.loads(b.pop("_json") or "{}")
    message["content"] = blocks
    return message


def a_shape(message: dict[str, Any]) -> tuple[Any, ...]:
    """What an Anthropic client acts on: blocks (ids aside), stop reason, usage."""
    blocks = []
    for b in message["content"]:
        if b["type"] == "tool_use":
            blocks.append(("tool_use", b["name"], b["input"]))
        elif b["type"] == "text":
            blocks.append(("text", b["text"]))
        elif b["type"] == "thinking":
            blocks.append(("thinking", b["thinking"]))
        else:
            blocks.append((b["type"],))
    return tuple(blocks), message["stop_reason"], message.get("usage")


def openai_of_stream(frames: list[tuple[str, Any]]) -> dict[str, Any]:
    """An OpenAI stream folded into the one choice it makes."""
    content, reasoning, finish = "", "", None
    calls: dict[int, dict[str, Any]] = {}
    usage = None
    for _, c in frames:
        if c == "[DONE]":
            continue
        assert "error" not in c, c
        if c.get("usage"):
            usage = c["usage"]
        for ch in c.get("choices") or []:
            d = ch.get("delta") or {}
            content += d.get("content") or ""
            reasoning += d.get("reasoning_content") or ""
            for tc in d.get("tool_calls") or []:
                e = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                e["id"] += tc.get("id") or ""
                f = tc.get("function") or {}
                e["name"] += f.get("name") or ""
                e["arguments"] += f.get("arguments") or ""
            if ch.get("finish_reason"):
                finish = ch["finish_reason"]
    return {
        "content": content,
        "reasoning": reasoning,
        "calls": [
            (v["name"], json.loads(v["arguments"] or "{}")) for _, v in sorted(calls.items())
        ],
        "finish": finish,
        "usage": usage,
    }


def openai_of_unary(body: dict[str, Any]) -> dict[str, Any]:
    ch = body["choices"][0]
    m = ch["message"]
    return {
        "content": m.get("content") or "",
        "reasoning": m.get("reasoning_content") or "",
        "calls": [
            (t["function"]["name"], json.loads(t["function"]["arguments"] or "{}"))
            for t in m.get("tool_calls") or []
        ],
        "finish": ch["finish_reason"],
        "usage": body.get("usage"),
    }
