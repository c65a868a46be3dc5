"""Request bodies shaped like what Claude Code sends to /v1/messages (deterministic).

A real Claude Code request is mostly a long system prompt in blocks marked
with `cache_control`, two dozen tools with JSON schemas, and a growing
history of user/assistant turns full of tool_use and tool_result blocks
(file contents, command output). `make_body` builds that shape and grows the
history until the encoded body reaches the requested size.

    python bench/bodies.py 80000   # print one body's size and shape
"""

from __future__ import annotations

import json
import random
import sys

SIZES = {"1k": 1_000, "80k": 80_000, "200k": 200_000}

_WORDS = (  # noqa: SIM905 - prose reads better than a list of quoted words
    "the function returns a list of files that match the pattern and skips hidden "
    "directories unless asked; each call reads the config once, validates every field "
    "and reports problems with their line numbers so the user can fix them at once "
    "before the daemon starts serving requests on the loopback address"
).split()

_CODE_LINES = (
    "def plan_attempts(config, route, *, unavailable=None):",
    "    profile = config.profile(route.profile)",
    "    if profile is None:",
    "        raise UnknownProfileError(f'unknown profile {route.profile!r}')",
    "    for name in profile.providers:",
    "        provider = config.provider(name)",
    "        attempts.append(provider)",
    "    return Plan(profile.name, tuple(attempts), tuple(skipped))",
    "async def handler(request: web.Request) -> web.StreamResponse:",
    "    body = await request.read()",
    "    resp = web.StreamResponse(status=200)",
    "    await resp.prepare(request)",
)

_TOOL_NAMES = (
    "Task",
    "Bash",
    "Glob",
    "Grep",
    "LS",
    "ExitPlanMode",
    "Read",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookRead",
    "NotebookEdit",
    "WebFetch",
    "TodoWrite",
    "WebSearch",
    "BashOutput",
    "KillShell",
    "SlashCommand",
    "ListMcpResources",
    "ReadMcpResource",
    "mcp__ide__getDiagnostics",
    "mcp__ide__executeCode",
    "mcp__git__status",
    "mcp__git__diff",
)


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _code(rng: random.Random, lines: int) -> str:
    return "\n".join(f"{i + 1:>6}\t{rng.choice(_CODE_LINES)}" for i in range(lines))


def _tool(rng: random.Random, name: str) -> dict:
    props = {
        f"{w}_{i}": {
            "type": rng.choice(("string", "integer", "boolean")),
            "description": _sentence(rng, rng.randint(6, 18)),
        }
        for i, w in enumerate(rng.sample(_WORDS, rng.randint(2, 5)))
    }
    props["items"] = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "line": {"type": "integer"}},
            "required": ["path"],
            "additionalProperties": False,
        },
    }
    return {
        "name": name,
        "description": _sentence(rng, rng.randint(30, 80)),
        "input_schema": {
            "type": "object",
            "properties": props,
            "required": list(props)[:1],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


def _turn(rng: random.Random, i: int) -> list[dict]:
    """One assistant tool_use and the user's tool_result that answers it."""
    tool_id = f"toolu_{i:04d}{rng.getrandbits(40):010x}"
    name = rng.choice(_TOOL_NAMES[4:10])
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": _sentence(rng, rng.randint(8, 30))},
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": name,
                    "input": {"file_path": f"/work/src/module_{i}.py", "limit": 200},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_id,
                    "content": _code(rng, rng.randint(20, 60)),
                }
            ],
        },
    ]


def _encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _small(rng: random.Random, size: int, stream: bool, model: str) -> dict:
    body = {
        "model": model,
        "max_tokens": 1024,
        "system": [
            {
                "type": "text",
                "text": "You are a coding agent.",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [{"role": "user", "content": ""}],
        "stream": stream,
    }
    filler = size - len(_encode(body))
    body["messages"][0]["content"] = _sentence(rng, 400)[: max(16, filler)]
    return body


def make_body(size: int, *, stream: bool = False, seed: int = 7, model: str = "a_fast") -> bytes:
    """An Anthropic Messages request body of about `size` bytes (never much less)."""
    rng = random.Random(seed)
    if size < 8_000:
        return _encode(_small(rng, size, stream, model))
    body: dict = {
        "model": model,
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "You are Claude Code, a coding agent."},
            {
                "type": "text",
                "text": _sentence(rng, 900),
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "tools": [_tool(rng, n) for n in _TOOL_NAMES],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>" + _sentence(rng, 60) + "</system-reminder>",
                    },
                    {"type": "text", "text": _sentence(rng, 25)},
                ],
            }
        ],
        "metadata": {"user_id": "user_bench_session_0000"},
        "stream": stream,
    }
    body["tools"][-1]["cache_control"] = {"type": "ephemeral"}
    i = 0
    while len(_encode(body)) < size:
        body["messages"].extend(_turn(rng, i))
        i += 1
    # Like Claude Code: the last user turn carries a cache breakpoint.
    last = body["messages"][-1]["content"][-1]
    last["cache_control"] = {"type": "ephemeral"}
    return _encode(body)


def _short_turn(rng: random.Random, i: int) -> list[dict]:
    """A tool call and its result, a few lines long: what one turn adds."""
    pair = _turn(rng, i)
    pair[1]["content"][0]["content"] = _code(rng, rng.randint(4, 12))
    return pair


# In every message of a conversation: RawClient writes a token of the same
# length over it on each pass, so that no pass resends what a router stored.
ROUND_MARK = "~~~~~~~~"


def _marked(message: dict) -> None:
    content = message["content"]
    if isinstance(content, str):
        message["content"] = f"{ROUND_MARK} {content}"
        return
    block = content[0]
    if isinstance(block.get("text"), str):
        block["text"] = f"{ROUND_MARK} {block['text']}"
    elif isinstance(block.get("content"), str):
        block["content"] = f"{ROUND_MARK} {block['content']}"


def make_conversation(
    size: int, turns: int, *, seed: int, stream: bool = False, model: str = "a_fast"
) -> list[bytes]:
    """Successive request bodies of one conversation, about `size` bytes on average.

    As a coding agent sends them: every body is the one before with one more
    tool call and its result, the same system prompt and tools, and the
    cache breakpoint moved to the last message. Conversations with other
    seeds are other sessions: they differ in their first message and in
    the session named in `metadata`. Every message carries ROUND_MARK.
    """
    rng = random.Random(seed)
    added = [_short_turn(rng, 1000 + k) for k in range(turns)]
    growth = sum(len(_encode({"m": pair})) for pair in added)
    base = json.loads(make_body(max(size - growth // 2, 8_000), stream=stream, model=model))
    first = base["messages"][0]["content"][-1]
    first["text"] = f"(conversation {seed}) {first['text']}"
    # One agent session per conversation; Claude Code names its session here.
    base["metadata"] = {"user_id": f"user_bench_session_{seed:04d}"}
    del base["messages"][-1]["content"][-1]["cache_control"]
    for message in [*base["messages"], *(m for pair in added for m in pair)]:
        _marked(message)
    out = []
    messages = base["messages"]
    for pair in added:
        messages = messages + pair
        body = dict(base, messages=json.loads(json.dumps(messages)))
        body["messages"][-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        out.append(_encode(body))
    return out


def describe(body: bytes) -> str:
    obj = json.loads(body)
    blocks = [
        b["type"] for m in obj["messages"] if isinstance(m["content"], list) for b in m["content"]
    ]
    return (
        f"{len(body)} bytes: {len(obj.get('system', []))} system blocks, "
        f"{len(obj.get('tools', []))} tools, {len(obj['messages'])} messages "
        f"({blocks.count('tool_use')} tool_use, {blocks.count('tool_result')} tool_result)"
    )


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["1000", "80000", "200000"]:
        print(describe(make_body(int(arg))))
