"""OpenAI chunk streams become valid Anthropic event sequences, however they are split."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coderouterd.translate.stream_o2a import OpenAIToAnthropicStream
from coderouterd.translate.types import NO_TOOLS, OutputFilters, ToolNames
from coderouterd.wire.sse import SSEDecoder

TRANSCRIPTS = Path(__file__).parent / "transcripts"
NAMES = sorted(p.stem for p in TRANSCRIPTS.glob("*.sse"))
TOOL_TRANSCRIPTS = [
    "gemini_missing_index",
    "llamacpp_qwen_tool_call_text",
    "lmstudio_stream_tools",
    "lmstudio_text_inside_tool_call",
    "ollama_parallel_tools",
    "openrouter_tools",
    "vllm_whole_call_one_chunk",
]
USAGE_KEYS = {
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
}
DELTA_FOR_BLOCK = {
    "text": "text_delta",
    "thinking": "thinking_delta",
    "tool_use": "input_json_delta",
}
Event = tuple[str, dict[str, Any]]


# the checker and the assembler


def check_sequence(events: list[Event]) -> None:
    """Asserts the sequence is one a client (Claude Code, the SDK) accepts."""
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_start") == names.count("message_stop") == 1
    assert names.count("message_delta") == 1
    for name, data in events:
        assert data["type"] == name
    message = events[0][1]["message"]
    assert message["content"] == [] and message["role"] == "assistant"
    assert message["stop_reason"] is None
    assert_complete_usage(message["usage"])
    assert message["usage"]["output_tokens"] == 0
    open_block: tuple[int, str] | None = None
    next_index = 0
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_block is None, "a block started while another is open"
            assert data["index"] == next_index
            block = data["content_block"]
            if block["type"] == "tool_use":
                assert block["input"] == {} and block["id"] and block["name"]
            elif block["type"] == "text":
                assert block["text"] == ""
            else:
                assert block == {"type": "thinking", "thinking": "", "signature": ""}
            open_block = (next_index, block["type"])
            next_index += 1
        elif name == "content_block_delta":
            assert open_block is not None, "a delta outside any block"
            assert data["index"] == open_block[0]
            assert data["delta"]["type"] == DELTA_FOR_BLOCK[open_block[1]]
        elif name == "content_block_stop":
            assert open_block is not None and data["index"] == open_block[0]
            open_block = None
        else:
            pytest.fail(f"unexpected event {name}")
    assert open_block is None, "a block left open at message_delta"
    delta = events[-2][1]
    assert isinstance(delta["delta"]["stop_reason"], str)
    assert delta["delta"]["stop_sequence"] is None
    assert_complete_usage(delta["usage"])


def assert_complete_usage(usage: dict[str, Any]) -> None:
    assert set(usage) == USAGE_KEYS
    assert all(isinstance(v, int) and v >= 0 for v in usage.values())


def assemble(events: list[Event]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for name, data in events:
        if name == "content_block_start":
            blocks.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            delta, block = data["delta"], blocks[data["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
    for index, text in partial.items():
        blocks[index]["input"] = json.loads(text)
    for block in blocks:
        if block["type"] == "text":
            assert block["text"].strip() and block["text"] == block["text"].lstrip()
    delta = events[-2][1]
    return {
        "content": blocks,
        "stop_reason": delta["delta"]["stop_reason"],
        "usage": delta["usage"],
    }


# running transcripts


def load(name: str) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    golden = json.loads((TRANSCRIPTS / f"{name}.json").read_text())
    config, expected = golden["config"], golden["expected"]
    # The goldens record the upstream's call ids; every call is named
    # toolu_<message id>_<n> instead (response_o2a).
    base = config["message_id"].removeprefix("msg_")
    uses = [b for b in expected["content"] if b["type"] == "tool_use"]
    for n, block in enumerate(uses, 1):
        block["id"] = f"toolu_{base}_{n}"
    return (TRANSCRIPTS / f"{name}.sse").read_bytes(), config, expected


def make_stream(config: dict[str, Any]) -> OpenAIToAnthropicStream:
    return OpenAIToAnthropicStream(
        message_id=config["message_id"],
        model=config["model"],
        filters=msgspec.convert(config["filters"], OutputFilters),
        names=ToolNames(frozenset(config["tool_names"])),
        estimated_input_tokens=config["estimated_input_tokens"],
    )


def decode_chunks(raw: bytes, cuts: list[int]) -> list[dict[str, Any] | None]:
    """The chunks of a transcript cut at the given byte offsets; None stands for [DONE]."""
    decoder = SSEDecoder()
    chunks: list[dict[str, Any] | None] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        for event in decoder.feed(raw[start:cut]):
            chunks.append(None if event.data == b"[DONE]" else msgspec.json.decode(event.data))
        start = cut
    assert decoder.pending == b""
    return chunks


def translate(stream: OpenAIToAnthropicStream, chunks: list[dict[str, Any] | None]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += stream.finish() if chunk is None else stream.feed(chunk)
    assert stream.finish() == []
    return events


def run_and_compare(name: str, chunks: list[dict[str, Any] | None]) -> None:
    _, config, expected = load(name)
    stream = make_stream(config)
    events = translate(stream, chunks)
    check_sequence(events)
    message = assemble(events)
    assert message == {k: expected[k] for k in ("content", "stop_reason", "usage")}
    assert stream.usage == expected["usage"]
    assert stream.usage_estimated is expected["usage_estimated"]
    assert stream.repairs == expected["repairs"]
    assert stream.started is bool(expected["content"])


@pytest.mark.parametrize("name", NAMES)
def test_transcript_gives_the_golden_message(name: str) -> None:
    raw, _, _ = load(name)
    run_and_compare(name, decode_chunks(raw, []))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_transcript_split_anywhere_gives_the_golden_message(data: st.DataObject, name: str) -> None:
    raw, _, _ = load(name)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    run_and_compare(name, decode_chunks(raw, cuts))


@pytest.mark.parametrize("name", TOOL_TRANSCRIPTS)
def test_tool_transcript_split_at_every_single_point_gives_the_golden_message(
    name: str,
) -> None:
    raw, _, _ = load(name)
    for cut in range(len(raw) + 1):
        run_and_compare(name, decode_chunks(raw, [cut]))


def split_text(data: st.DataObject, text: str) -> list[str]:
    if len(text) < 2:
        return [text]
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(text) - 1), max_size=5))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def rechunk(data: st.DataObject, chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """One chunk as several, each string of its delta cut at drawn points."""
    choices = chunk.get("choices")
    if not choices:
        return [chunk]
    choice = choices[0]
    delta = choice.get("delta") or {}
    deltas: list[dict[str, Any]] = []
    for key in ("reasoning_content", "reasoning", "content"):
        if isinstance(delta.get(key), str) and delta[key]:
            deltas += [{key: part} for part in split_text(data, delta[key])]
    for fragment in delta.get("tool_calls") or []:
        parts = split_text(data, fragment["function"].get("arguments", ""))
        first = {**fragment, "function": {**fragment["function"], "arguments": parts[0]}}
        deltas.append({"tool_calls": [first]})
        for part in parts[1:]:
            more: dict[str, Any] = {"function": {"arguments": part}}
            if "index" in fragment:
                more["index"] = fragment["index"]
            deltas.append({"tool_calls": [more]})
    if not deltas:
        return [chunk]
    bare = {k: v for k, v in chunk.items() if k != "usage"}
    out = [{**bare, "choices": [{**choice, "delta": d, "finish_reason": None}]} for d in deltas]
    out[-1] = {**chunk, "choices": [{**choice, "delta": deltas[-1]}]}
    return out


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_transcript_with_deltas_cut_anywhere_gives_the_golden_message(
    data: st.DataObject, name: str
) -> None:
    raw, _, _ = load(name)
    chunks: list[dict[str, Any] | None] = []
    for chunk in decode_chunks(raw, []):
        chunks += [None] if chunk is None else rechunk(data, chunk)
    run_and_compare(name, chunks)


def test_tool_call_text_cut_at_every_character_gives_the_golden_message() -> None:
    raw, _, _ = load("llamacpp_qwen_tool_call_text")
    chunks = decode_chunks(raw, [])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c)
    head, tail = chunks[0], chunks[-2]
    assert head is not None and tail is not None
    for cut in range(len(text) + 1):
        pieces = [head] + [content_chunk(part) for part in (text[:cut], text[cut:])]
        run_and_compare("llamacpp_qwen_tool_call_text", [*pieces, tail, None])
    one_by_one = [head] + [content_chunk(ch) for ch in text]
    run_and_compare("llamacpp_qwen_tool_call_text", [*one_by_one, tail, None])


# single behaviours, one chunk shape at a time


def content_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def delta_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def call(index: int | None, call_id: str | None, name: str | None, args: str) -> dict[str, Any]:
    fragment: dict[str, Any] = {"function": {"arguments": args}}
    if index is not None:
        fragment["index"] = index
    if call_id is not None:
        fragment["id"] = call_id
        fragment["type"] = "function"
    if name is not None:
        fragment["function"]["name"] = name
    return fragment


def tools_chunk(*fragments: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return delta_chunk({"tool_calls": list(fragments)}, finish)


def stream_of(
    think: str = "off", repair: bool = False, tools: tuple[str, ...] = ("Read", "Bash")
) -> OpenAIToAnthropicStream:
    filters = msgspec.convert(
        {"think": think, "repair_tool_calls": repair, "strip_tool_markup": repair}, OutputFilters
    )
    return OpenAIToAnthropicStream(
        message_id="msg_t",
        model="m",
        filters=filters,
        names=ToolNames(frozenset(tools)),
        estimated_input_tokens=100,
    )


def run(
    chunks: list[dict[str, Any]], stream: OpenAIToAnthropicStream | None = None
) -> dict[str, Any]:
    stream = stream or stream_of()
    events: list[Event] = []
    for chunk in chunks:
        events += stream.feed(chunk)
    events += stream.finish()
    check_sequence(events)
    return assemble(events)


def test_empty_upstream_stream_still_gives_start_delta_and_stop() -> None:
    stream = stream_of()
    events = stream.finish()
    check_sequence(events)
    assert [n for n, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[0][1]["message"]["usage"] == {
        "input_tokens": 100,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert stream.usage_estimated and not stream.started


def test_finish_is_idempotent_and_feed_after_it_is_ignored() -> None:
    stream = stream_of()
    stream.feed(content_chunk("hi"))
    assert stream.finish()
    assert stream.finish() == []
    assert stream.feed(content_chunk("late")) == []


def test_message_start_alone_is_not_the_commit_point() -> None:
    stream = stream_of()
    events = stream.feed(delta_chunk({"role": "assistant", "content": ""}))
    assert [n for n, _ in events] == ["message_start"]
    assert not stream.started
    stream.feed(content_chunk("x"))
    assert stream.started


def test_ollama_new_id_on_reused_index_starts_a_new_call() -> None:
    message = run(
        [
            tools_chunk(call(0, "call_a", "Read", '{"file_path":"/a"}')),
            tools_chunk(call(0, "call_b", "Read", '{"file_path":'), finish=None),
            tools_chunk(call(0, None, None, '"/b"}'), finish="tool_calls"),
        ]
    )
    assert [(b["id"], b["input"]) for b in message["content"]] == [
        ("toolu_t_1", {"file_path": "/a"}),
        ("toolu_t_2", {"file_path": "/b"}),
    ]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("no_id", [None, ""])
def test_whole_calls_at_a_reused_index_without_ids_are_calls_of_their_own(
    no_id: str | None,
) -> None:
    """Each call whole in one chunk, all at index 0 and without an id: a name
    after arguments that are already whole JSON starts the next call (merged,
    the client got one call with `{...}{...}` as its input)."""
    message = run(
        [
            tools_chunk(call(0, no_id, "Read", '{"file_path":"/a"}')),
            tools_chunk(call(0, no_id, "Read", '{"file_path":"/b"}')),
            tools_chunk(call(0, no_id, "Bash", '{"command":"ls"}'), finish="tool_calls"),
        ]
    )
    assert [(b["name"], b["input"]) for b in message["content"]] == [
        ("Read", {"file_path": "/a"}),
        ("Read", {"file_path": "/b"}),
        ("Bash", {"command": "ls"}),
    ]


def test_a_name_sent_again_with_each_fragment_of_one_call_continues_it() -> None:
    message = run(
        [
            tools_chunk(call(0, None, "Read", '{"file_')),
            tools_chunk(call(0, None, "Read", 'path":"/a"}'), finish="tool_calls"),
        ]
    )
    assert [(b["name"], b["input"]) for b in message["content"]] == [("Read", {"file_path": "/a"})]


@pytest.mark.parametrize("think", ["off", "thinking", "strip"])
def test_text_between_a_calls_fragments_keeps_its_spaces(think: str) -> None:
    """Text pieces that arrive while a call streams are one text, spaces and
    all: the filters release what they hold before the call, without
    starting the text over (a new response drops its leading spaces)."""
    message = run(
        [
            tools_chunk(call(0, "c1", "Read", '{"file_')),
            content_chunk("I am reading"),
            tools_chunk(call(0, None, None, 'path":')),
            content_chunk(" the file"),
            tools_chunk(call(0, None, None, '"/a"}')),
            content_chunk(" now."),
        ],
        stream_of(think),
    )
    assert message["content"][0]["input"] == {"file_path": "/a"}
    assert message["content"][1] == {"type": "text", "text": "I am reading the file now."}


def test_a_think_block_open_when_a_call_arrives_goes_on_after_it() -> None:
    message = run(
        [
            content_chunk("<think>first I"),
            tools_chunk(call(0, "c1", "Read", '{"file_path":"/a"}')),
            content_chunk(" check</think>done"),
        ],
        stream_of("thinking"),
    )
    kinds = [(b["type"], b.get("thinking") or b.get("text")) for b in message["content"]]
    assert kinds == [
        ("thinking", "first I"),
        ("tool_use", None),
        ("thinking", " check"),
        ("text", "done"),
    ]


def test_missing_index_new_name_starts_a_new_call_and_bare_fragments_continue() -> None:
    message = run(
        [
            tools_chunk(call(None, None, "Read", '{"file_path"')),
            tools_chunk(call(None, None, None, ':"/a"}')),
            tools_chunk(call(None, None, "Bash", '{"command":"ls"}')),
        ]
    )
    assert [(b["name"], b["input"]) for b in message["content"]] == [
        ("Read", {"file_path": "/a"}),
        ("Bash", {"command": "ls"}),
    ]
    ids = [b["id"] for b in message["content"]]
    assert ids == ["toolu_t_1", "toolu_t_2"]


def test_id_only_on_first_fragment_and_parallel_calls_by_index() -> None:
    message = run(
        [
            tools_chunk(call(0, "call_1", "Read", "")),
            tools_chunk(call(0, None, None, '{"file_path":"/x"}')),
            tools_chunk(call(1, "call_2", "Bash", '{"command"')),
            tools_chunk(call(1, None, None, ':"pwd"}'), finish="tool_calls"),
        ]
    )
    assert [(b["id"], b["input"]) for b in message["content"]] == [
        ("toolu_t_1", {"file_path": "/x"}),
        ("toolu_t_2", {"command": "pwd"}),
    ]


def test_a_call_starts_at_once_and_its_arguments_come_whole_when_it_ends() -> None:
    stream = stream_of()
    events = stream.feed(tools_chunk(call(0, "c", "Read", '{"file_path":')))
    start = next(d for n, d in events if n == "content_block_start")
    assert start["content_block"]["input"] == {}
    assert stream.started
    events = stream.feed(tools_chunk(call(0, None, None, '"/x"}')))
    assert [n for n, _ in events] == []
    events = stream.feed(tools_chunk(call(1, "d", "Bash", "{}")))
    deltas = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert deltas == ['{"file_path":"/x"}']
    events = stream.finish()
    deltas = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert deltas == ["{}"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{'command': 'ls'}", {"_raw": "{'command': 'ls'}"}),
        ('["ls"]', {"_raw": '["ls"]'}),
        ('{"command": "l', {"_raw": '{"command": "l'}),
    ],
)
def test_streamed_arguments_that_are_no_json_object_are_kept_as_raw(
    arguments: str, expected: dict[str, Any]
) -> None:
    """As the non-streaming path does: a client's SDK assembling the call
    must be able to parse what it gets."""
    half = len(arguments) // 2
    message = run(
        [
            tools_chunk(call(0, "c", "Bash", arguments[:half])),
            tools_chunk(call(0, None, None, arguments[half:]), finish="tool_calls"),
        ]
    )
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_t_1", "name": "Bash", "input": expected}
    ]


def test_a_call_cut_at_max_tokens_is_stop_reason_max_tokens() -> None:
    message = run([tools_chunk(call(0, "c", "Read", '{"file_pa'), finish="length")])
    assert message["stop_reason"] == "max_tokens"


def test_a_stop_sequence_the_server_names_is_stop_reason_stop_sequence() -> None:
    stream = OpenAIToAnthropicStream(
        message_id="msg_t",
        model="m",
        filters=OutputFilters(),
        names=NO_TOOLS,
        estimated_input_tokens=1,
        stop_sequences=frozenset({"</answer>"}),
    )
    stream.feed(content_chunk("<answer>42"))
    last = delta_chunk({}, "stop")
    last["choices"][0]["stop_reason"] = "</answer>"
    stream.feed(last)
    delta = next(d for n, d in stream.finish() if n == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "</answer>"}


def test_text_and_tools_interleaved_open_and_close_blocks_in_order() -> None:
    message = run(
        [
            content_chunk("Let me look."),
            tools_chunk(call(0, "c1", "Read", '{"file_path":"/a"}')),
            content_chunk("And then "),
            content_chunk("run it."),
            tools_chunk(call(1, "c2", "Bash", '{"command":"x"}'), finish="tool_calls"),
        ]
    )
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "text", "tool_use"]
    assert message["content"][2]["text"] == "And then run it."


def test_arguments_arriving_before_the_name_are_held_until_it_comes() -> None:
    message = run(
        [
            tools_chunk(call(0, "c1", None, '{"file_path":')),
            tools_chunk({"index": 0, "function": {"name": "Read", "arguments": '"/a"}'}}),
        ]
    )
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_t_1", "name": "Read", "input": {"file_path": "/a"}}
    ]


def test_fragment_for_an_already_closed_call_is_dropped_and_counted() -> None:
    stream = stream_of()
    message = run(
        [
            tools_chunk(call(0, "c1", "Read", '{"file_path":"/a"}')),
            tools_chunk(call(1, "c2", "Bash", '{"command":"ls"}')),
            tools_chunk(call(0, None, None, "garbage")),
        ],
        stream,
    )
    assert [b["input"] for b in message["content"]] == [{"file_path": "/a"}, {"command": "ls"}]
    assert stream.dropped_fragments == 1


def test_only_choice_index_zero_is_used() -> None:
    chunk = {
        "choices": [
            {"index": 1, "delta": {"content": "other"}, "finish_reason": None},
            {"index": 0, "delta": {"content": "mine"}, "finish_reason": "stop"},
        ]
    }
    assert run([chunk])["content"] == [{"type": "text", "text": "mine"}]


def test_reasoning_block_is_closed_before_text_starts() -> None:
    message = run(
        [
            delta_chunk({"reasoning_content": "think"}),
            delta_chunk({"reasoning_content": "ing"}),
            content_chunk("answer", "stop"),
        ]
    )
    assert message["content"] == [
        {"type": "thinking", "thinking": "thinking", "signature": ""},
        {"type": "text", "text": "answer"},
    ]


def test_reasoning_key_used_by_openrouter_is_read_and_not_doubled() -> None:
    message = run([delta_chunk({"reasoning": "r1", "reasoning_content": "r1"}), content_chunk("a")])
    assert message["content"][0]["thinking"] == "r1"


def test_think_tags_in_content_become_a_thinking_block_when_asked() -> None:
    chunks = [content_chunk(p) for p in ["<thi", "nk>plan</th", "ink>\n\ndone"]]
    message = run(chunks, stream_of(think="thinking"))
    assert message["content"] == [
        {"type": "thinking", "thinking": "plan", "signature": ""},
        {"type": "text", "text": "done"},
    ]
    assert run(chunks, stream_of(think="strip"))["content"] == [{"type": "text", "text": "done"}]


def test_whitespace_only_text_never_opens_a_block() -> None:
    message = run(
        [
            delta_chunk({"reasoning_content": "r"}),
            content_chunk("\n\n"),
            tools_chunk(call(0, "c", "Read", "{}")),
            content_chunk("  \n"),
        ]
    )
    assert [b["type"] for b in message["content"]] == ["thinking", "tool_use"]


def test_repaired_call_sets_tool_use_whatever_finish_reason_said() -> None:
    stream = stream_of(repair=True)
    message = run(
        [
            content_chunk('Reading.\n<tool_call>{"name": "Read", '),
            content_chunk('"arguments": {"file_path": "/a"}}</tool_call>', "stop"),
        ],
        stream,
    )
    assert message["stop_reason"] == "tool_use"
    assert message["content"][1] == {
        "type": "tool_use",
        "id": "toolu_t_1",
        "name": "Read",
        "input": {"file_path": "/a"},
    }
    assert stream.repairs == 1


def test_text_held_by_repair_comes_out_before_a_structured_tool_call() -> None:
    message = run(
        [
            content_chunk("Checking:\n"),
            content_chunk("Rea"),
            tools_chunk(call(0, "c", "Bash", "{}")),
        ],
        stream_of(repair=True),
    )
    assert message["content"][0] == {"type": "text", "text": "Checking:\nRea"}


def test_usage_from_a_chunk_with_null_choices_and_cached_tokens() -> None:
    stream = stream_of()
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 20},
    }
    message = run([content_chunk("hi", "stop"), {"choices": None, "usage": usage}], stream)
    assert message["usage"] == {
        "input_tokens": 30,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 20,
    }
    assert not stream.usage_estimated


def test_usage_is_estimated_and_marked_when_the_upstream_sends_none() -> None:
    stream = stream_of()
    message = run([content_chunk("x" * 41, "length")], stream)
    assert message["usage"]["output_tokens"] == 11
    assert message["usage"]["input_tokens"] == 100
    assert message["stop_reason"] == "max_tokens"
    assert stream.usage_estimated


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        # No call came: the turn ended (tool_use only with a tool_use block).
        ("tool_calls", "end_turn"),
        ("function_call", "end_turn"),
        ("content_filter", "refusal"),
        ("error", "end_turn"),
        (None, "end_turn"),
    ],
)
def test_finish_reason_maps_to_stop_reason(finish: str | None, stop: str) -> None:
    assert run([content_chunk("a", finish)])["stop_reason"] == stop


def test_legacy_function_call_delta_becomes_a_tool_use() -> None:
    message = run(
        [
            delta_chunk({"function_call": {"name": "Read", "arguments": '{"file_'}}),
            delta_chunk({"function_call": {"arguments": 'path":"/a"}'}}, "function_call"),
        ]
    )
    assert message["content"][0]["name"] == "Read"
    assert message["content"][0]["input"] == {"file_path": "/a"}
    assert message["stop_reason"] == "tool_use"
