"""Anthropic Messages requests as OpenAI Chat Completions requests: golden tables."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.content_a2o import DOCUMENT_OMITTED, IMAGE_MOVED, IMAGE_OMITTED
from coderouterd.translate.memo_a2o import TranslatedHistory
from coderouterd.translate.request_a2o import anthropic_to_openai_request
from coderouterd.translate.types import Degradation

CAPS = ModelCapabilities()
VISION = ModelCapabilities(vision=True)
USER_HI = {"role": "user", "content": "hi"}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def calls(*ids: str) -> dict[str, Any]:
    """An assistant message calling Read once per id, as a client sends it."""
    uses = [{"type": "tool_use", "id": i, "name": "Read", "input": {}} for i in ids]
    return {"role": "assistant", "content": uses}


def calls_out(*ids: str) -> dict[str, Any]:
    """`calls(*ids)` translated."""
    function = {"name": "Read", "arguments": "{}"}
    listed = [{"id": i, "type": "function", "function": function} for i in ids]
    return {"role": "assistant", "content": None, "tool_calls": listed}


def translate(
    body: dict[str, Any],
    *,
    caps: ModelCapabilities = CAPS,
    limit: int | None = None,
    stream: bool = False,
) -> tuple[dict[str, Any], list[Degradation]]:
    """The translation as the codec makes it, checked against the other ways:
    messages decoded, and raw through a TranslatedHistory twice (the second
    time from what it remembers), by message and as a conversation's turn.
    All agree, in their errors too."""
    full: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 1024, **body}
    if "tools" in full:
        # As the codec hands them over: raw JSON, schemas decoded only if they change.
        full["tools"] = msgspec.Raw(msgspec.json.encode(full["tools"]))
    raw = dict(full)
    if "messages" in raw:
        raw["messages"] = msgspec.Raw(msgspec.json.encode(raw["messages"]))
    history, turns = TranslatedHistory(), TranslatedHistory()
    outcomes = [
        _outcome(b, caps, limit, stream, h, conversation=c)
        for b, h, c in (
            (full, None, None),
            (raw, None, None),
            (raw, history, None),
            (raw, history, None),
            (raw, turns, 1),
            (raw, turns, 1),
        )
    ]
    assert all(o == outcomes[0] for o in outcomes), outcomes
    result = outcomes[0]
    if isinstance(result, InvalidRequestError):
        raise result
    return result


def _outcome(
    body: dict[str, Any],
    caps: ModelCapabilities,
    limit: int | None,
    stream: bool,
    history: TranslatedHistory | None,
    *,
    conversation: object = None,
) -> Any:
    try:
        out, degraded = anthropic_to_openai_request(
            body, model="qwen3:32b", caps=caps, max_output_tokens=limit, stream=stream,
            history=history, conversation=conversation,
        )  # fmt: skip
    except InvalidRequestError as exc:
        return _SameError(exc)
    # What goes on the wire: raw values and decoded ones alike, as plain JSON.
    return msgspec.json.decode(msgspec.json.encode(out)), degraded


class _SameError(InvalidRequestError):
    """An error that equals another of the same message and field."""

    def __init__(self, exc: InvalidRequestError) -> None:
        super().__init__(exc.message, field=exc.field)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SameError) and (str(self), self.field) == (
            str(other),
            other.field,
        )

    __hash__ = None  # type: ignore[assignment]


def messages_of(messages: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
    out, _ = translate({"messages": messages}, **kwargs)
    return list(out["messages"])


def fields(degradations: list[Degradation]) -> list[str]:
    return [d.field for d in degradations]


def test_a_plain_request_gets_model_max_tokens_and_stream_false() -> None:
    out, degradations = translate({"messages": [USER_HI]})
    assert out == {
        "model": "qwen3:32b",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1024,
        "stream": False,
    }
    assert degradations == []


def test_streaming_asks_for_usage() -> None:
    out, _ = translate({"messages": [USER_HI], "stream": True}, stream=True)
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


# Messages: (name, anthropic messages, openai messages, degraded fields).
MESSAGE_CASES: list[tuple[str, list[Any], list[Any], list[str]]] = [
    (
        "text blocks of one message are joined with a newline",
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
        [{"role": "user", "content": "a\nb"}],
        [],
    ),
    (
        "a mid-conversation system message stays in place",
        [
            USER_HI,
            {"role": "assistant", "content": "yo"},
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "more"},
        ],
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "more"},
        ],
        [],
    ),
    (
        "a system message given as blocks, cache_control dropped",
        [
            {
                "role": "system",
                "content": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            },
            USER_HI,
        ],
        [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        ["cache_control"],
    ),
    (
        "assistant tool_use becomes tool_calls with null content",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "Read",
                        "input": {"path": "é.txt", "n": [1, 2.5]},
                    }
                ],
            },
        ],
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "Read", "arguments": '{"path":"é.txt","n":[1,2.5]}'},
                    }
                ],
            },
        ],
        [],
    ),
    (
        "assistant text and tool_use keep the text",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "t1", "name": "Ls", "input": {}},
                ],
            },
        ],
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "Ls", "arguments": "{}"}}
                ],
            },
        ],
        [],
    ),
    (
        "parallel tool results become tool messages in order, before the remaining text",
        [
            calls("t1", "t2"),
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "one"},
                            {"type": "text", "text": "uno"},
                        ],
                    },
                    {"type": "text", "text": "continue"},
                ],
            },
        ],
        [
            calls_out("t1", "t2"),
            {"role": "tool", "tool_call_id": "t2", "content": "two"},
            {"role": "tool", "tool_call_id": "t1", "content": "one\nuno"},
            {"role": "user", "content": "continue"},
        ],
        [],
    ),
    (
        "is_error is carried as an Error: prefix",
        [
            calls("t1", "t2"),
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "no such file",
                        "is_error": True,
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": "ok",
                        "is_error": False,
                    },
                ],
            },
        ],
        [
            calls_out("t1", "t2"),
            {"role": "tool", "tool_call_id": "t1", "content": "Error: no such file"},
            {"role": "tool", "tool_call_id": "t2", "content": "ok"},
        ],
        [],
    ),
    (
        "a tool_result without content is empty text",
        [
            calls("t1", "t2"),
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1"},
                    {"type": "tool_result", "tool_use_id": "t2", "content": None, "is_error": True},
                ],
            },
        ],
        [
            calls_out("t1", "t2"),
            {"role": "tool", "tool_call_id": "t1", "content": ""},
            {"role": "tool", "tool_call_id": "t2", "content": "Error: "},
        ],
        [],
    ),
    (
        "an image inside a tool result becomes a placeholder",
        [
            calls("t1"),
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [
                            {"type": "text", "text": "screenshot:"},
                            {"type": "image", "source": PNG},
                        ],
                    }
                ],
            },
        ],
        [
            calls_out("t1"),
            {"role": "tool", "tool_call_id": "t1", "content": f"screenshot:\n{IMAGE_OMITTED}"},
        ],
        ["tool_result.image"],
    ),
    (
        "thinking blocks are never sent as content, recorded once",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "secret", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "text", "text": "answer"},
                ],
            },
            {"role": "user", "content": "and?"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "more", "signature": "s2"}],
            },
        ],
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "and?"},
            {"role": "assistant", "content": ""},
        ],
        ["content.thinking"],
    ),
    (
        "server tool blocks in history are dropped",
        [
            USER_HI,
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": "srv_1",
                        "name": "web_search",
                        "input": {"query": "x"},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
                    {"type": "text", "text": "found"},
                ],
            },
        ],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "found"}],
        ["content.server_tool_use", "content.web_search_tool_result"],
    ),
    (
        "images to a model without vision become placeholders",
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": PNG},
                    {"type": "text", "text": "what is it?"},
                ],
            }
        ],
        [{"role": "user", "content": f"{IMAGE_OMITTED}\nwhat is it?"}],
        ["image"],
    ),
    (
        "a plain-text document is sent as text, after its title and context",
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "data": "d", "media_type": "text/plain"},
                        "title": "notes",
                        "context": "from the wiki",
                    },
                    {"type": "text", "text": "summarise"},
                ],
            }
        ],
        [{"role": "user", "content": "[document: notes]\nfrom the wiki\nd\nsummarise"}],
        [],
    ),
    (
        "a document the backend cannot read is a placeholder",
        [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                    {"type": "text", "text": "summarise"},
                ],
            }
        ],
        [{"role": "user", "content": f"{DOCUMENT_OMITTED}\nsummarise"}],
        ["content.document"],
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected", "degraded"),
    [case[1:] for case in MESSAGE_CASES],
    ids=[case[0] for case in MESSAGE_CASES],
)
def test_messages_translate(messages: list[Any], expected: list[Any], degraded: list[str]) -> None:
    out, degradations = translate({"messages": messages})
    assert out["messages"] == expected
    assert fields(degradations) == degraded


def test_images_keep_content_parts_for_a_vision_model() -> None:
    url = {"type": "url", "url": "https://example.com/cat.jpg"}
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": PNG},
        {"type": "image", "source": url},
    ]
    out, degradations = translate({"messages": [{"role": "user", "content": content}]}, caps=VISION)
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "compare"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        }
    ]
    assert degradations == []


def test_an_image_by_file_id_cannot_be_sent() -> None:
    image = {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
    out, degradations = translate({"messages": [{"role": "user", "content": [image]}]}, caps=VISION)
    assert out["messages"] == [{"role": "user", "content": IMAGE_OMITTED}]
    assert fields(degradations) == ["image.source"]


def test_the_top_level_system_comes_first() -> None:
    blocks = [
        {"type": "text", "text": "x-anthropic-billing-header: cc"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
    ]
    for system, text in [
        ("plain", "plain"),
        (blocks, "x-anthropic-billing-header: cc\n\nYou are Claude Code."),
    ]:
        out, _ = translate({"system": system, "messages": [USER_HI]})
        assert out["messages"][0] == {"role": "system", "content": text}
    out, _ = translate({"system": "", "messages": [USER_HI]})
    assert out["messages"] == [{"role": "user", "content": "hi"}]


def test_cache_control_is_never_forwarded_and_recorded_once() -> None:
    ephemeral = {"type": "ephemeral", "ttl": "1h"}
    body = {
        "cache_control": {"type": "ephemeral"},
        "system": [{"type": "text", "text": "s", "cache_control": ephemeral}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a", "cache_control": ephemeral}],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t",
                        "name": "f",
                        "input": {},
                        "cache_control": ephemeral,
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "cache_control": ephemeral,
                        "content": [{"type": "text", "text": "r", "cache_control": ephemeral}],
                    }
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": ephemeral}],
    }
    out, degradations = translate(body)
    assert "cache_control" not in json.dumps(out)
    assert fields(degradations) == ["cache_control"]


def test_tool_input_properties_named_like_anthropic_fields_are_kept() -> None:
    schema = {"type": "object", "properties": {"cache_control": {"type": "string"}}}
    out, degradations = translate(
        {"messages": [USER_HI], "tools": [{"name": "f", "input_schema": schema}]}
    )
    assert out["tools"][0]["function"]["parameters"] == schema
    assert degradations == []


def test_tools_become_functions_and_server_tools_are_dropped() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer", "exclusiveMinimum": 0, "format": "int32"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    tools = [
        {"name": "Count", "description": "count things", "input_schema": schema},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "custom", "name": "Bare", "input_schema": {"type": "object"}},
        {"type": "bash_20250124", "name": "bash"},
    ]
    out, degradations = translate({"messages": [USER_HI], "tools": tools})
    kept = {key: value for key, value in schema.items() if key != "$schema"}
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "Count", "description": "count things", "parameters": kept},
        },
        {"type": "function", "function": {"name": "Bare", "parameters": {"type": "object"}}},
    ]
    assert fields(degradations) == ["tools.web_search_20250305", "tools.bash_20250124"]


def test_only_server_tools_means_no_tools_and_no_tool_choice() -> None:
    body = {
        "messages": [USER_HI],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "any"},
    }
    out, _ = translate(body)
    assert "tools" not in out and "tool_choice" not in out


def test_a_tool_choice_naming_a_dropped_server_tool_is_auto() -> None:
    body = {
        "messages": [USER_HI],
        "tools": [
            {"type": "web_search_20250305", "name": "web_search"},
            {"name": "f", "input_schema": {"type": "object"}},
        ],
        "tool_choice": {"type": "tool", "name": "web_search"},
    }
    out, degradations = translate(body)
    assert out["tool_choice"] == "auto"
    assert "tool_choice" in fields(degradations)


def test_a_model_without_tools_gets_none() -> None:
    body = {
        "messages": [USER_HI],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
    }
    out, degradations = translate(body, caps=ModelCapabilities(tools=False))
    assert "tools" not in out and "tool_choice" not in out
    assert degradations == [Degradation("tools", "the model does not support tools")]


TOOL_CHOICES = [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    (
        {"type": "tool", "name": "f"},
        {"tool_choice": {"type": "function", "function": {"name": "f"}}},
    ),
    (
        {"type": "auto", "disable_parallel_tool_use": True},
        {"tool_choice": "auto", "parallel_tool_calls": False},
    ),
    (
        {"type": "any", "disable_parallel_tool_use": True},
        {"tool_choice": "required", "parallel_tool_calls": False},
    ),
    ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
]


@pytest.mark.parametrize(("choice", "expected"), TOOL_CHOICES)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    out, _ = translate({"messages": [USER_HI], "tools": tools, "tool_choice": choice})
    assert {k: v for k, v in out.items() if k in ("tool_choice", "parallel_tool_calls")} == expected


def test_sampling_parameters() -> None:
    body = {
        "messages": [USER_HI],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["</done>", "STOP"],
    }
    out, degradations = translate(body)
    assert (out["temperature"], out["top_p"], out["stop"]) == (0.2, 0.9, ["</done>", "STOP"])
    assert "top_k" not in out
    assert fields(degradations) == ["top_k"]
    out, _ = translate({"messages": [USER_HI], "stop_sequences": []})
    assert "stop" not in out


MAX_TOKENS = [
    # (max_tokens, argument limit, caps limit, sent, clamped)
    (1024, None, None, 1024, False),
    (64000, 8192, None, 8192, True),
    (64000, None, 4096, 4096, True),
    (64000, 8192, 4096, 4096, True),
    (2000, 8192, 4096, 2000, False),
    (None, 8192, None, 8192, False),
    (None, None, None, None, False),
]


@pytest.mark.parametrize(("asked", "limit", "cap", "sent", "clamped"), MAX_TOKENS)
def test_max_tokens_is_clamped_to_the_limits(
    asked: int | None, limit: int | None, cap: int | None, sent: int | None, clamped: bool
) -> None:
    caps = ModelCapabilities(max_output_tokens=cap)
    out, degradations = translate(
        {"messages": [USER_HI], "max_tokens": asked}, caps=caps, limit=limit
    )
    assert out.get("max_tokens") == sent
    assert fields(degradations) == (["max_tokens"] if clamped else [])


THINKING = [
    # (reasoning_param, thinking, sent, degraded)
    (
        "reasoning_effort",
        {"type": "enabled", "budget_tokens": 1024},
        {"reasoning_effort": "low"},
        False,
    ),
    (
        "reasoning_effort",
        {"type": "enabled", "budget_tokens": 4095},
        {"reasoning_effort": "low"},
        False,
    ),
    (
        "reasoning_effort",
        {"type": "enabled", "budget_tokens": 4096},
        {"reasoning_effort": "medium"},
        False,
    ),
    (
        "reasoning_effort",
        {"type": "enabled", "budget_tokens": 16383},
        {"reasoning_effort": "medium"},
        False,
    ),
    (
        "reasoning_effort",
        {"type": "enabled", "budget_tokens": 16384},
        {"reasoning_effort": "high"},
        False,
    ),
    ("reasoning_effort", {"type": "adaptive"}, {"reasoning_effort": "medium"}, False),
    ("reasoning_effort", {"type": "disabled"}, {}, False),
    (
        "reasoning",
        {"type": "enabled", "budget_tokens": 10000},
        {"reasoning": {"max_tokens": 10000}},
        False,
    ),
    ("reasoning", {"type": "adaptive"}, {"reasoning": {"effort": "medium"}}, False),
    ("reasoning", {"type": "disabled"}, {}, False),
    ("think", {"type": "enabled", "budget_tokens": 2048}, {"think": True}, False),
    ("think", {"type": "adaptive"}, {"think": True}, False),
    ("think", {"type": "disabled"}, {"think": False}, False),
    (None, {"type": "enabled", "budget_tokens": 2048}, {}, True),
    (None, {"type": "adaptive"}, {}, True),
    (None, {"type": "disabled"}, {}, False),
]


@pytest.mark.parametrize(("param", "thinking", "sent", "degraded"), THINKING)
def test_thinking_becomes_the_backends_reasoning_parameter(
    param: Any, thinking: dict[str, Any], sent: dict[str, Any], degraded: bool
) -> None:
    caps = ModelCapabilities(thinking=True, reasoning_param=param)
    out, degradations = translate({"messages": [USER_HI], "thinking": thinking}, caps=caps)
    assert {k: v for k, v in out.items() if k in ("reasoning_effort", "reasoning", "think")} == sent
    assert fields(degradations) == (["thinking"] if degraded else [])


EFFORT = [
    # (reasoning_param, thinking, output_config.effort, sent)
    ("reasoning_effort", {"type": "adaptive"}, "low", {"reasoning_effort": "low"}),
    ("reasoning_effort", {"type": "adaptive"}, "medium", {"reasoning_effort": "medium"}),
    ("reasoning_effort", {"type": "adaptive"}, "high", {"reasoning_effort": "high"}),
    ("reasoning_effort", {"type": "adaptive"}, "max", {"reasoning_effort": "high"}),
    (
        "reasoning_effort",
        {"type": "enabled", "budget_tokens": 20000},
        "low",
        {"reasoning_effort": "low"},
    ),
    ("reasoning", {"type": "adaptive"}, "low", {"reasoning": {"effort": "low"}}),
]


@pytest.mark.parametrize(("param", "thinking", "effort", "sent"), EFFORT)
def test_output_config_effort_sets_the_reasoning_effort(
    param: Any, thinking: dict[str, Any], effort: str, sent: dict[str, Any]
) -> None:
    caps = ModelCapabilities(thinking=True, reasoning_param=param)
    body = {"messages": [USER_HI], "thinking": thinking, "output_config": {"effort": effort}}
    out, degradations = translate(body, caps=caps)
    assert {k: v for k, v in out.items() if k in ("reasoning_effort", "reasoning", "think")} == sent
    assert degradations == []


def test_output_config_beyond_its_effort_is_noted_as_dropped() -> None:
    caps = ModelCapabilities(thinking=True, reasoning_param="reasoning_effort")
    config = {"effort": "low", "format": {"type": "json_schema"}}
    body = {"messages": [USER_HI], "thinking": {"type": "adaptive"}, "output_config": config}
    out, degradations = translate(body, caps=caps)
    assert out["reasoning_effort"] == "low"
    assert fields(degradations) == ["output_config"]


def tool_result_turn(*inner: dict[str, Any], also: tuple[dict[str, Any], ...] = ()) -> Any:
    result = {"type": "tool_result", "tool_use_id": "t1", "content": list(inner)}
    return [calls("t1"), {"role": "user", "content": [result, *also]}]


def test_a_vision_model_gets_a_tool_results_images_after_the_tool_messages() -> None:
    url = "data:image/png;base64,iVBORw0KGgo="
    messages = tool_result_turn(
        {"type": "text", "text": "shot.png:"},
        {"type": "image", "source": PNG},
        also=({"type": "text", "text": "what is it?"},),
    )
    out, degradations = translate({"messages": messages}, caps=VISION)
    assert out["messages"] == [
        calls_out("t1"),
        {"role": "tool", "tool_call_id": "t1", "content": f"shot.png:\n{IMAGE_MOVED}"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Images from the result of tool call t1:"},
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "what is it?"},
            ],
        },
    ]
    assert degradations == []


def test_a_tool_results_image_by_file_id_is_omitted_even_for_a_vision_model() -> None:
    image = {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
    out, degradations = translate({"messages": tool_result_turn(image)}, caps=VISION)
    assert out["messages"] == [
        calls_out("t1"),
        {"role": "tool", "tool_call_id": "t1", "content": IMAGE_OMITTED},
    ]
    assert fields(degradations) == ["image.source"]


@pytest.mark.parametrize(
    ("source", "text", "degraded"),
    [
        (
            {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
            DOCUMENT_OMITTED,
            True,
        ),
        ({"type": "text", "media_type": "text/plain", "data": "a = 1"}, "a = 1", False),
    ],
)
def test_a_document_in_a_tool_result_is_said_in_its_tool_message(
    source: dict[str, Any], text: str, degraded: bool
) -> None:
    out, degradations = translate(
        {"messages": tool_result_turn({"type": "document", "source": source})}
    )
    assert out["messages"][1] == {"role": "tool", "tool_call_id": "t1", "content": text}
    assert fields(degradations) == (["content.document"] if degraded else [])


def test_anthropic_only_fields_are_dropped_and_named_once_each() -> None:
    body = {
        "messages": [USER_HI],
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "output_config": {"effort": "high"},
        "container": "container_1",
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "m"}],
        "service_tier": "auto",
        "cache_control": {"type": "ephemeral"},
        "some_future_field": {"x": 1},
        "metadata": {"user_id": "user_abc_session_1"},
    }
    out, degradations = translate(body)
    for key in body:
        if key != "messages":
            assert key not in out
    # output_config is read with thinking (request_params), ahead of the rest.
    assert fields(degradations) == [
        "output_config",
        "context_management",
        "container",
        "mcp_servers",
        "service_tier",
        "cache_control",
        "some_future_field",
        "metadata",
    ]


def test_metadata_user_id_never_reaches_an_openai_backend_and_the_drop_is_recorded() -> None:
    out, degradations = translate(
        {"messages": [USER_HI], "metadata": {"user_id": "user_abc_account_x_session_y"}}
    )
    assert "user" not in out and "metadata" not in out
    assert "user_abc" not in json.dumps(out)
    assert fields(degradations) == ["metadata"]


def test_degradations_are_unique_per_field() -> None:
    image = {"type": "image", "source": PNG, "cache_control": {"type": "ephemeral"}}
    messages = [{"role": "user", "content": [image, image, {"type": "text", "text": "x"}]}] * 5
    _, degradations = translate({"messages": messages, "top_k": 5})
    assert fields(degradations) == ["cache_control", "image", "top_k"]


ERRORS = [
    ({"messages": "hi"}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages[0].content[0]"),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
        "messages[0].content[0].text",
    ),
    (
        {
            "messages": [
                USER_HI,
                {"role": "assistant", "content": "a"},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                        {"type": "tool_result", "tool_use_id": "t2", "content": 42},
                    ],
                },
            ]
        },
        "messages[2].content[1].content",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
        "messages[0].content[0].tool_use_id",
    ),
    (
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}],
                }
            ]
        },
        "messages[0].content[0].input",
    ),
    (
        {
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}
            ]
        },
        "messages[0].content[0].id",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}
            ]
        },
        "messages[0].content[0].source",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}]},
        "messages[0].content[0].source.type",
    ),
    ({"system": [{"type": "image", "source": PNG}], "messages": [USER_HI]}, "system[0]"),
    ({"messages": [USER_HI], "max_tokens": "many"}, "max_tokens"),
    ({"messages": [USER_HI], "max_tokens": 0}, "max_tokens"),
    ({"messages": [USER_HI], "thinking": {"type": "sometimes"}}, "thinking.type"),
    ({"messages": [USER_HI], "thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"messages": [USER_HI], "thinking": "on"}, "thinking"),
    ({"messages": [USER_HI], "tools": {"name": "f"}}, "tools"),
    ({"messages": [USER_HI], "tools": [{"input_schema": {}}]}, "tools[0].name"),
    ({"messages": [USER_HI], "tools": [{"name": "f"}]}, "tools[0].input_schema"),
    (
        {"messages": [USER_HI], "tools": [{"type": "custom", "name": "f"}]},
        "tools[0].input_schema",
    ),
    (
        {"messages": [USER_HI], "tools": [{"name": "f", "input_schema": "object"}]},
        "tools[0].input_schema",
    ),
    (
        {
            "messages": [USER_HI],
            "tools": [{"name": "f", "input_schema": {}}],
            "tool_choice": {"type": "maybe"},
        },
        "tool_choice.type",
    ),
    (
        {
            "messages": [USER_HI],
            "tools": [{"name": "f", "input_schema": {}}],
            "tool_choice": {"type": "tool"},
        },
        "tool_choice.name",
    ),
    ({"messages": [USER_HI], "stop_sequences": "STOP"}, "stop_sequences"),
]


@pytest.mark.parametrize(("body", "field"), ERRORS)
def test_malformed_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate(body)
    assert caught.value.field == field


def test_a_model_that_cannot_reason_gets_no_reasoning_parameter_even_with_a_switch() -> None:
    caps = ModelCapabilities(thinking=False, reasoning_param="reasoning_effort")
    thinking = {"type": "enabled", "budget_tokens": 2048}
    out, degradations = translate({"messages": [USER_HI], "thinking": thinking}, caps=caps)
    assert "reasoning_effort" not in out
    assert [(d.field, d.reason) for d in degradations] == [
        ("thinking", "the model cannot reason (capabilities: thinking: false)")
    ]


TOOL_TURN = [
    USER_HI,
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "need the file", "signature": ""},
            {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "/a"}},
        ],
    },
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "x"}]},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "done", "signature": ""},
            {"type": "text", "text": "It says x."},
        ],
    },
]


def test_echo_reasoning_sends_the_thinking_of_tool_turns_back_as_reasoning_content() -> None:
    out, degradations = translate(
        {"messages": TOOL_TURN}, caps=ModelCapabilities(echo_reasoning=True)
    )
    assistants = [m for m in out["messages"] if m["role"] == "assistant"]
    assert assistants[0]["reasoning_content"] == "need the file"
    # A turn without tool calls is over: its thinking is not needed.
    assert "reasoning_content" not in assistants[1]
    assert fields(degradations) == ["content.thinking"]


def test_without_echo_reasoning_no_thinking_is_sent_back() -> None:
    out, degradations = translate({"messages": TOOL_TURN})
    assert not any("reasoning_content" in m for m in out["messages"])
    assert fields(degradations) == ["content.thinking"]


STRICT_TOOL = {
    "name": "Read",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"limit": {"type": "integer", "exclusiveMinimum": 0}},
        "additionalProperties": False,
    },
}


def test_a_strict_backend_gets_tool_schemas_it_accepts_and_the_cut_is_recorded() -> None:
    out, degradations = translate(
        {"messages": [USER_HI], "tools": [STRICT_TOOL]},
        caps=ModelCapabilities(strict_schema=True),
    )
    assert out["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"limit": {"type": "integer"}},
    }
    assert [(d.field, d.reason) for d in degradations] == [
        (
            "tools.input_schema",
            "keywords the backend rejects dropped: additionalProperties, exclusiveMinimum",
        )
    ]


def test_other_backends_get_the_tool_schema_as_sent_but_for_its_schema_uri() -> None:
    out, degradations = translate({"messages": [USER_HI], "tools": [STRICT_TOOL]})
    parameters = out["tools"][0]["function"]["parameters"]
    assert parameters == {k: v for k, v in STRICT_TOOL["input_schema"].items() if k != "$schema"}
    assert degradations == []


def test_raw_tool_schemas_translate_exactly_as_decoded_ones() -> None:
    tools = [
        {"name": "Count", "description": "d", "input_schema": STRICT_TOOL["input_schema"]},
        {
            "name": "Plain",
            "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    body = {"model": "m", "max_tokens": 10, "messages": [USER_HI]}
    for caps in (CAPS, ModelCapabilities(strict_schema=True)):
        decoded = anthropic_to_openai_request(
            {**body, "tools": tools}, model="q", caps=caps, max_output_tokens=None, stream=False
        )
        raw = anthropic_to_openai_request(
            {**body, "tools": msgspec.Raw(msgspec.json.encode(tools))},
            model="q",
            caps=caps,
            max_output_tokens=None,
            stream=False,
        )
        assert msgspec.json.encode(raw[0]) == msgspec.json.encode(decoded[0])
        assert raw[1] == decoded[1]


@pytest.mark.parametrize("param", ["reasoning_effort", "reasoning", "think", None])
def test_a_subagent_with_thinking_disabled_and_an_effort_gets_no_reasoning(param: Any) -> None:
    # Claude Code's subagents send this pair; it must not turn reasoning on.
    caps = ModelCapabilities(thinking=True, reasoning_param=param)
    body = {
        "messages": [USER_HI],
        "thinking": {"type": "disabled"},
        "output_config": {"effort": "high"},
    }
    out, degradations = translate(body, caps=caps)
    assert out.get("reasoning_effort") is None and out.get("reasoning") is None
    assert out.get("think") in (None, False)
    assert "output_config" not in out
    assert "output_config" in fields(degradations)


def raw_request(messages: list[Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 5, "messages": msgspec.Raw(msgspec.json.encode(messages))}


def via(
    history: TranslatedHistory | None, messages: list[Any], conversation: object = None
) -> dict[str, Any]:
    return via_with_notes(history, messages, conversation)[0]


def via_with_notes(
    history: TranslatedHistory | None, messages: list[Any], conversation: object = None
) -> tuple[dict[str, Any], list[Degradation]]:
    out, notes = anthropic_to_openai_request(
        raw_request(messages), model="x", caps=CAPS, max_output_tokens=None, stream=False,
        history=history, conversation=conversation,
    )  # fmt: skip
    return msgspec.json.decode(msgspec.json.encode(out)), notes


def test_a_turn_translates_only_the_messages_it_has_not_sent_before() -> None:
    history = TranslatedHistory()
    turn = [USER_HI, {"role": "assistant", "content": "yo"}]
    via(history, turn)
    assert history.reused == 0
    out = via(history, [*turn, {"role": "user", "content": "more"}])
    assert history.reused == 2
    assert out["messages"][-1] == {"role": "user", "content": "more"}


def test_the_translated_history_forgets_the_least_recently_sent_past_its_size() -> None:
    history = TranslatedHistory(max_bytes=200)
    texts = [{"role": "user", "content": f"message {i} " + "x" * 40} for i in range(6)]
    for m in texts:
        via(history, [m])
    # One message with its translation fits: the newest is kept.
    via(history, [texts[-1]])
    assert history.reused == 1
    via(history, [texts[0]])
    assert history.reused == 1


def _said(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


CACHED_TURN = {
    "role": "user",
    "content": [{"type": "text", "text": "the plan", "cache_control": {"type": "ephemeral"}}],
}


def test_a_conversations_next_turn_takes_the_messages_it_shares_without_looking_them_up() -> None:
    history = TranslatedHistory()
    first = [CACHED_TURN, _said("a picture")]
    via(history, first, conversation=7)
    out, notes = via_with_notes(history, [*first, USER_HI], conversation=7)
    # Taken whole from the last turn: no lookup by bytes, same translation.
    assert history.reused == 0
    assert (out, notes) == via_with_notes(None, [*first, USER_HI])
    # What a taken message dropped is reported again, as on every turn.
    assert [n.field for n in notes] == ["cache_control"]


def test_a_changed_last_message_is_translated_again_and_the_ones_before_it_are_taken() -> None:
    history = TranslatedHistory()
    first = [USER_HI, _said("one"), {"role": "user", "content": "two"}]
    via(history, first, conversation=1)
    moved = [USER_HI, _said("one"), {"role": "user", "content": "two, edited"}, _said("three")]
    assert via(history, moved, conversation=1) == via(None, moved)
    assert history.reused == 0
    # Fewer messages than last time, all of them unchanged: taken as they are.
    assert via(history, moved[:2], conversation=1) == via(None, moved[:2])


def test_a_conversation_hint_is_never_trusted_without_the_bytes() -> None:
    history = TranslatedHistory()
    via(history, [USER_HI, _said("for one")], conversation=3)
    # Every message ends where one of the last turn's did: only the bytes tell.
    other = [{"role": "user", "content": "ho"}, _said("for two")]
    assert via(history, other, conversation=3) == via(None, other)


def test_a_history_with_spacing_is_not_kept_as_a_turn() -> None:
    history = TranslatedHistory()
    spaced = b'[ {"role":"user","content":"hi"} ]'
    body = {"model": "m", "max_tokens": 5, "messages": msgspec.Raw(spaced)}
    anthropic_to_openai_request(
        body, model="x", caps=CAPS, max_output_tokens=None, stream=False,
        history=history, conversation=5,
    )  # fmt: skip
    assert history.last_turn(5) is None
    via(history, [USER_HI], conversation=5)
    assert history.last_turn(5) is not None


# Some of one length: an edit that keeps every message's end where it was.
_MESSAGES = st.sampled_from(
    [
        USER_HI,
        _said("ok"),
        _said("no"),
        _said("sure"),
        CACHED_TURN,
        {"role": "user", "content": "ho"},
    ]
)
_EDITS = st.lists(
    st.tuples(st.sampled_from(["append", "edit_last", "drop_last"]), _MESSAGES), max_size=12
)


@given(_EDITS)
def test_turn_after_turn_the_translation_is_that_of_the_whole_history(
    edits: list[tuple[str, dict[str, Any]]],
) -> None:
    history = TranslatedHistory()
    messages: list[dict[str, Any]] = [USER_HI]
    for op, message in edits:
        if op == "append" or not messages:
            messages = [*messages, message]
        elif op == "edit_last":
            messages = [*messages[:-1], message]
        else:
            messages = messages[:-1] or [message]
        if all(m["role"] == "assistant" for m in messages):
            # Nothing for the backend to answer: refused, by either path.
            for memo in (history, None):
                with pytest.raises(InvalidRequestError):
                    via(memo, messages, conversation=0)
            continue
        assert via_with_notes(history, messages, conversation=0) == via_with_notes(None, messages)


def test_the_last_turns_kept_are_bounded_by_bytes_and_by_count() -> None:
    long = [{"role": "user", "content": "x" * 150}]
    history = TranslatedHistory(max_bytes=400, max_conversations=3)
    for c in range(3):
        via(history, long, conversation=c)
    # ~170 bytes each: two fit in 400, the oldest went.
    assert [history.last_turn(c) is not None for c in range(3)] == [False, True, True]
    history = TranslatedHistory(max_conversations=2)
    for c in range(3):
        via(history, [USER_HI], conversation=c)
    assert [history.last_turn(c) is not None for c in range(3)] == [False, True, True]
    # A history larger than the whole budget is not kept at all.
    small = TranslatedHistory(max_bytes=100)
    via(small, long, conversation=9)
    assert small.last_turn(9) is None
