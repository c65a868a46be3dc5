"""OpenAI Chat Completions requests as Anthropic Messages requests: golden tables."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.params_o2a import DEFAULT_MAX_TOKENS
from coderouterd.translate.request_a2o import anthropic_to_openai_request
from coderouterd.translate.request_o2a import CONTINUE_PLACEHOLDER, openai_to_anthropic_request
from coderouterd.translate.types import Degradation

USER_HI = {"role": "user", "content": "hi"}
HI = {"role": "user", "content": [{"type": "text", "text": "hi"}]}


def translate(
    body: dict[str, Any], *, limit: int | None = None
) -> tuple[dict[str, Any], list[Degradation]]:
    return openai_to_anthropic_request(
        {"model": "gpt-4o", **body}, model="claude-sonnet-4-5", max_output_tokens=limit
    )


def fields(degradations: list[Degradation]) -> list[str]:
    return [d.field for d in degradations]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_plain_request_gets_the_default_max_tokens() -> None:
    out, degradations = translate({"messages": [USER_HI]})
    assert out == {"model": "claude-sonnet-4-5", "messages": [HI], "max_tokens": DEFAULT_MAX_TOKENS}
    assert DEFAULT_MAX_TOKENS == 4096
    assert degradations == []


# (name, openai messages, anthropic system, anthropic messages, degraded fields)
MESSAGE_CASES: list[tuple[str, list[Any], str | None, list[Any], list[str]]] = [
    (
        "system and developer messages fold into one system, wherever they stand",
        [
            {"role": "system", "content": "one"},
            {"role": "developer", "content": [text("two")]},
            USER_HI,
            {"role": "system", "content": "three"},
        ],
        "one\n\ntwo\n\nthree",
        [HI],
        [],
    ),
    (
        "content parts: text, base64 data URL, http URL",
        [
            {
                "role": "user",
                "content": [
                    text("look"),
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/png;base64,iVBORw0KGgo=",
                            "detail": "high",
                        },
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ],
            }
        ],
        None,
        [
            {
                "role": "user",
                "content": [
                    text("look"),
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.jpg"},
                    },
                ],
            }
        ],
        [],
    ),
    (
        "audio and file parts have no Anthropic form",
        [
            {
                "role": "user",
                "content": [
                    text("hear"),
                    {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
                    {"type": "file", "file": {"file_id": "f"}},
                ],
            }
        ],
        None,
        [{"role": "user", "content": [text("hear")]}],
        ["content.input_audio", "content.file"],
    ),
    (
        "assistant tool_calls become tool_use blocks after the text",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    call("call_1", "Read", '{"path": "a.py", "lines": [1, 2]}'),
                    call("call_2", "Ls", ""),
                ],
            },
        ],
        None,
        [
            HI,
            {
                "role": "assistant",
                "content": [
                    text("Checking."),
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "Read",
                        "input": {"path": "a.py", "lines": [1, 2]},
                    },
                    {"type": "tool_use", "id": "call_2", "name": "Ls", "input": {}},
                ],
            },
        ],
        [],
    ),
    (
        "consecutive tool messages become one user message, in order, then the user text",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [call("b", "f", "{}"), call("a", "f", "{}")],
            },
            {"role": "tool", "tool_call_id": "b", "content": "B"},
            {"role": "tool", "tool_call_id": "a", "content": [text("A1"), text("A2")]},
            {"role": "user", "content": "thanks"},
        ],
        None,
        [
            HI,
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "b", "name": "f", "input": {}},
                    {"type": "tool_use", "id": "a", "name": "f", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "b", "content": "B"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "a",
                        "content": [text("A1"), text("A2")],
                    },
                    text("thanks"),
                ],
            },
        ],
        [],
    ),
    (
        "tool results move ahead of user text in a merged turn",
        [
            USER_HI,
            {"role": "assistant", "content": None, "tool_calls": [call("a", "f", "{}")]},
            {"role": "user", "content": "note"},
            {"role": "tool", "tool_call_id": "a", "content": None},
        ],
        None,
        [
            HI,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": ""},
                    text("note"),
                ],
            },
        ],
        [],
    ),
    (
        "consecutive same-role messages merge",
        [
            USER_HI,
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
        ],
        None,
        [
            {"role": "user", "content": [text("hi"), text("again")]},
            {"role": "assistant", "content": [text("a"), text("b")]},
        ],
        [],
    ),
    (
        "empty and whitespace-only text is left out, and so is a message left empty",
        [
            USER_HI,
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [text("  "), text("x")]},
            {"role": "assistant", "content": [text("\n")]},
            {"role": "assistant", "content": "ok"},
        ],
        None,
        [
            {"role": "user", "content": [text("hi"), text("x")]},
            {"role": "assistant", "content": [text("ok")]},
        ],
        [],
    ),
    (
        "a conversation starting with the assistant gets a user turn first",
        [{"role": "system", "content": "s"}, {"role": "assistant", "content": "Hello!"}, USER_HI],
        "s",
        [
            {"role": "user", "content": [text(CONTINUE_PLACEHOLDER)]},
            {"role": "assistant", "content": [text("Hello!")]},
            HI,
        ],
        ["messages"],
    ),
    (
        "reasoning_content echoed by a client is not sent (it carries no signature)",
        [USER_HI, {"role": "assistant", "content": "a", "reasoning_content": "thought"}],
        None,
        [HI, {"role": "assistant", "content": [text("a")]}],
        [],
    ),
]


@pytest.mark.parametrize(
    ("messages", "system", "expected", "degraded"),
    [case[1:] for case in MESSAGE_CASES],
    ids=[case[0] for case in MESSAGE_CASES],
)
def test_messages_translate(
    messages: list[Any], system: str | None, expected: list[Any], degraded: list[str]
) -> None:
    out, degradations = translate({"messages": messages})
    assert out.get("system") == system
    assert out["messages"] == expected
    assert fields(degradations) == degraded


MAX_TOKENS = [
    # (body, limit, sent, degraded field)
    ({}, None, 4096, None),
    ({}, 2048, 2048, None),
    ({"max_tokens": 100}, None, 100, None),
    ({"max_completion_tokens": 300, "max_tokens": 100}, None, 300, None),
    ({"max_tokens": 100000}, 8192, 8192, "max_tokens"),
    ({"max_completion_tokens": 100000}, 8192, 8192, "max_completion_tokens"),
    ({"max_tokens": None, "max_completion_tokens": None}, None, 4096, None),
]


@pytest.mark.parametrize(("extra", "limit", "sent", "degraded"), MAX_TOKENS)
def test_max_tokens(
    extra: dict[str, Any], limit: int | None, sent: int, degraded: str | None
) -> None:
    out, degradations = translate({"messages": [USER_HI], **extra}, limit=limit)
    assert out["max_tokens"] == sent
    assert fields(degradations) == ([degraded] if degraded else [])


STOPS = [
    ("END", ["END"], []),
    (["a", "b"], ["a", "b"], []),
    (["\n\n", "END"], ["END"], ["stop"]),
    ([], None, []),
    (None, None, []),
]


@pytest.mark.parametrize(("stop", "sent", "degraded"), STOPS)
def test_stop_becomes_stop_sequences(
    stop: Any, sent: list[str] | None, degraded: list[str]
) -> None:
    out, degradations = translate({"messages": [USER_HI], "stop": stop})
    assert out.get("stop_sequences") == sent
    assert fields(degradations) == degraded


def test_sampling_parameters() -> None:
    out, degradations = translate({"messages": [USER_HI], "temperature": 0.3, "top_p": 0.8})
    assert (out["temperature"], "top_p" in out) == (0.3, False)
    assert fields(degradations) == ["top_p"]
    out, degradations = translate({"messages": [USER_HI], "temperature": 1.7})
    assert out["temperature"] == 1.0
    assert fields(degradations) == ["temperature"]


def test_tools_and_their_schemas() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    tools = [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "find",
                "parameters": schema,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "now"}},
        {"type": "custom", "custom": {"name": "grammar"}},
    ]
    out, degradations = translate({"messages": [USER_HI], "tools": tools})
    assert out["tools"] == [
        {"name": "search", "description": "find", "input_schema": schema},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert fields(degradations) == ["tools.custom"]


TOOL_CHOICES = [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
    (None, None, None),
    (None, True, None),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
]


@pytest.mark.parametrize(("choice", "parallel", "sent"), TOOL_CHOICES)
def test_tool_choice(choice: Any, parallel: bool | None, sent: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {
        "messages": [USER_HI],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out, _ = translate(body)
    assert out.get("tool_choice") == sent


def test_tool_choice_without_tools_is_not_sent() -> None:
    out, _ = translate(
        {"messages": [USER_HI], "tool_choice": "required", "parallel_tool_calls": False}
    )
    assert "tools" not in out and "tool_choice" not in out


DROPPED = [
    ("n", 2, True),
    ("n", 1, False),
    ("logprobs", True, True),
    ("logprobs", False, False),
    ("top_logprobs", 5, True),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, True),
    ("response_format", {"type": "json_object"}, True),
    ("response_format", {"type": "text"}, False),
    ("seed", 42, True),
    ("presence_penalty", 0.5, True),
    ("presence_penalty", 0, False),
    ("frequency_penalty", 0.5, True),
    ("logit_bias", {"50256": -100}, True),
    ("store", False, False),
    ("stream_options", {"include_usage": True}, False),
    ("some_future_field", "x", True),
]


@pytest.mark.parametrize(("key", "value", "degraded"), DROPPED)
def test_fields_without_an_anthropic_equivalent(key: str, value: Any, degraded: bool) -> None:
    out, degradations = translate({"messages": [USER_HI], key: value})
    assert key not in out
    assert fields(degradations) == ([key] if degraded else [])


def test_stream_and_user_pass() -> None:
    out, _ = translate({"messages": [USER_HI], "stream": True, "user": "u-1"})
    assert out["stream"] is True
    assert out["metadata"] == {"user_id": "u-1"}
    out, _ = translate({"messages": [USER_HI], "stream": False})
    assert "stream" not in out


REASONING = [
    # (body, thinking sent, max_tokens sent, degraded)
    ({"reasoning_effort": "low"}, {"type": "enabled", "budget_tokens": 2048}, 4096 + 2048, []),
    ({"reasoning_effort": "medium"}, {"type": "enabled", "budget_tokens": 8192}, 4096 + 8192, []),
    ({"reasoning_effort": "high"}, {"type": "enabled", "budget_tokens": 24576}, 4096 + 24576, []),
    ({"reasoning_effort": "minimal"}, {"type": "enabled", "budget_tokens": 1024}, 4096 + 1024, []),
    ({"reasoning_effort": "none"}, None, 4096, []),
    (
        {"reasoning_effort": "high", "max_tokens": 10000},
        {"type": "enabled", "budget_tokens": 9999},
        10000,
        [],
    ),
    ({"reasoning_effort": "low", "max_tokens": 1024}, None, 1024, ["reasoning_effort"]),
    (
        {"reasoning_effort": "low", "temperature": 0.2, "top_p": 0.5},
        {"type": "enabled", "budget_tokens": 2048},
        6144,
        ["temperature", "top_p"],
    ),
    (
        {"reasoning_effort": "low", "temperature": 1, "top_p": 0.95},
        {"type": "enabled", "budget_tokens": 2048},
        6144,
        ["top_p"],
    ),
]


@pytest.mark.parametrize(("extra", "thinking", "max_tokens", "degraded"), REASONING)
def test_reasoning_effort_becomes_a_thinking_budget(
    extra: dict[str, Any], thinking: dict[str, Any] | None, max_tokens: int, degraded: list[str]
) -> None:
    out, degradations = translate({"messages": [USER_HI], **extra})
    assert out.get("thinking") == thinking
    assert out["max_tokens"] == max_tokens
    assert fields(degradations) == degraded
    if thinking is not None:
        assert "top_p" not in out or out["top_p"] >= 0.95
        assert out.get("temperature", 1) == 1


def test_the_default_max_tokens_with_thinking_respects_the_limit() -> None:
    out, _ = translate({"messages": [USER_HI], "reasoning_effort": "high"}, limit=8192)
    assert out["max_tokens"] == 8192
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8191}


def test_forced_tool_use_wins_over_thinking() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = {
        "messages": [USER_HI],
        "tools": tools,
        "tool_choice": "required",
        "reasoning_effort": "high",
    }
    out, degradations = translate(body)
    assert "thinking" not in out
    assert out["tool_choice"] == {"type": "any"}
    assert fields(degradations) == ["reasoning_effort"]


def test_thinking_is_off_while_a_tool_call_is_being_answered_by_claude() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    asked = {"role": "assistant", "content": None, "tool_calls": [call("a", "f", "{}")]}
    answer = {"role": "tool", "tool_call_id": "a", "content": "42"}
    loop = [USER_HI, asked, answer]

    def claude(messages: list[Any]) -> tuple[dict[str, Any], list[Degradation]]:
        body = {"model": "gpt-4o", "messages": messages, "tools": tools, "reasoning_effort": "low"}
        return openai_to_anthropic_request(
            body, model="claude-sonnet-4-5", max_output_tokens=None, signed_thinking=True
        )

    out, degradations = claude(loop)
    # An OpenAI client's assistant message has no signed thinking to start with.
    assert "thinking" not in out and out["max_tokens"] == 4096
    assert fields(degradations) == ["reasoning_effort"]
    assert "being answered" in degradations[0].reason
    # A tool result with the user's own words after it (merged into one turn)
    # still answers the call; once the assistant has answered in words, a
    # new turn thinks again.
    assert "thinking" not in claude([*loop, USER_HI])[0]
    out, degradations = claude([*loop, {"role": "assistant", "content": "it is 42"}, USER_HI])
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048} and not degradations
    # A backend that does not check signatures thinks throughout.
    out, degradations = translate({"messages": loop, "tools": tools, "reasoning_effort": "low"})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048} and not degradations


ERRORS = [
    ({}, "messages"),
    ({"messages": [USER_HI, "x"]}, "messages[1]"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].name"),
    ({"messages": [{"role": "moderator", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0]"),
    (
        {
            "messages": [
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                USER_HI,
            ]
        },
        "messages[0].content[0]",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                }
            ]
        },
        "messages[0].content[0].image_url.url",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}],
                }
            ]
        },
        "messages[0].content[0].image_url.url",
    ),
    (
        {
            "messages": [
                USER_HI,
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}],
                },
            ]
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        {"messages": [USER_HI, {"role": "assistant", "tool_calls": [call("", "f", "{}")]}]},
        "messages[1].tool_calls[0].id",
    ),
    (
        {"messages": [USER_HI, {"role": "assistant", "tool_calls": [{"id": "c"}]}]},
        "messages[1].tool_calls[0]",
    ),
    ({"messages": [USER_HI, {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id"),
    ({"messages": [USER_HI], "max_tokens": -1}, "max_tokens"),
    ({"messages": [USER_HI], "stop": 5}, "stop"),
    (
        {"messages": [USER_HI], "tools": [{"type": "function", "function": {"parameters": {}}}]},
        "tools[0].function.name",
    ),
    (
        {
            "messages": [USER_HI],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": "sometimes",
        },
        "tool_choice",
    ),
    ({"messages": [USER_HI], "reasoning_effort": "extreme"}, "reasoning_effort"),
]


@pytest.mark.parametrize(("body", "field"), ERRORS)
def test_malformed_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate(body)
    assert caught.value.field == field


# Round trip: an Anthropic conversation sent to an OpenAI backend and back.

# Values a JSON request can carry: no NaN or infinity (JSON has neither).
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_inputs = st.dictionaries(st.text(max_size=8), _json_values, max_size=4)
_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,20}", fullmatch=True)
_texts = st.text(min_size=1, max_size=30).filter(str.strip)
_text_blocks = st.lists(_texts.map(text), min_size=1, max_size=2)


@st.composite
def _assistant_turn(draw: st.DrawFn, first_id: int) -> dict[str, Any]:
    texts = draw(st.lists(_texts.map(text), max_size=2))
    count = draw(st.integers(min_value=0 if texts else 1, max_value=3))
    uses = [
        {
            "type": "tool_use",
            "id": f"toolu_{first_id + n}",
            "name": draw(_names),
            "input": draw(_inputs),
        }
        for n in range(count)
    ]
    return {"role": "assistant", "content": texts + uses}


@st.composite
def _results_turn(draw: st.DrawFn, uses: list[dict[str, Any]]) -> dict[str, Any]:
    results = []
    for use in draw(st.permutations(uses)):
        content = draw(st.text(max_size=20) | st.lists(st.text(max_size=10).map(text), max_size=2))
        result = {"type": "tool_result", "tool_use_id": use["id"], "content": content}
        if draw(st.booleans()):
            result["is_error"] = draw(st.booleans())
        results.append(result)
    return {"role": "user", "content": results + draw(st.lists(_texts.map(text), max_size=2))}


@st.composite
def _conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages = [{"role": "user", "content": draw(_text_blocks)}]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        assistant = draw(_assistant_turn(first_id=len(messages) * 10))
        messages.append(assistant)
        uses = [b for b in assistant["content"] if b["type"] == "tool_use"]
        user = (
            draw(_results_turn(uses)) if uses else {"role": "user", "content": draw(_text_blocks)}
        )
        messages.append(user)
    return messages


def _essence(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Per message: role, joined text, tool uses, tool results (error flag folded into the text)."""
    out = []
    for message in messages:
        blocks = message["content"]
        texts = "\n".join(b["text"] for b in blocks if b["type"] == "text")
        uses = [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
        results = [
            (b["tool_use_id"], _result_text(b)) for b in blocks if b["type"] == "tool_result"
        ]
        out.append((message["role"], texts, uses, results))
    return out


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content", "")
    body = content if isinstance(content, str) else "\n".join(b["text"] for b in content)
    return ("Error: " if block.get("is_error") else "") + body


@given(_conversations())
@settings(max_examples=200)
def test_a_conversation_survives_the_round_trip_through_openai(
    messages: list[dict[str, Any]],
) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": messages}
    openai, degraded = anthropic_to_openai_request(
        body, model="local", caps=ModelCapabilities(), max_output_tokens=None, stream=False
    )
    assert degraded == []
    back, degraded = openai_to_anthropic_request(openai, model="claude", max_output_tokens=None)
    assert degraded == []
    assert _essence(back["messages"]) == _essence(messages)


def test_tool_ids_anthropic_refuses_are_rewritten_alike_in_call_and_result() -> None:
    """Kimi names its calls `functions.Read:0`; Anthropic takes only
    `^[a-zA-Z0-9_-]+$` and answers 400 to every later turn of that history."""
    messages = [
        USER_HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                call("functions.Read:0", "Read", '{"p": "/a"}'),
                call("functions.Read.0", "Read", '{"p": "/b"}'),
                call("call_ok-1", "Read", '{"p": "/c"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "functions.Read:0", "content": "A"},
        {"role": "tool", "tool_call_id": "functions.Read.0", "content": "B"},
        {"role": "tool", "tool_call_id": "call_ok-1", "content": "C"},
    ]
    out, _ = translate({"messages": messages})
    calls = [b["id"] for b in out["messages"][1]["content"]]
    results = [b["tool_use_id"] for b in out["messages"][2]["content"]]
    assert calls == results
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in calls)
    assert len(set(calls)) == 3 and calls[2] == "call_ok-1"
    assert calls[0].startswith("functions_Read_0_")
