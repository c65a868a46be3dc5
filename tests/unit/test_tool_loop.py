"""Tool loops found in a request's history, through the body memo and without it."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.ingress.body import BodyMemo, RequestBody, parse_body
from coderouterd.ingress.tool_loop import HINT, ToolLoop, detect, with_hint

Call = tuple[str, dict[str, Any]]
# A call and the content of its result.
Step = tuple[str, dict[str, Any], str]


def history(calls: list[Call | Step | str], *, extra_text: bool = False) -> list[dict[str, Any]]:
    """A user prompt, then per entry an assistant turn (a tool call, or text
    for a str) and, after a call, the user's tool_result: the one given, else
    one that depends on the call only (the same call, the same result)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "fix the bug"}]
    for i, call in enumerate(calls):
        if isinstance(call, str):
            messages.append({"role": "assistant", "content": [{"type": "text", "text": call}]})
            messages.append({"role": "user", "content": "go on"})
            continue
        name, args = call[0], call[1]
        content: list[dict[str, Any]] = (
            [{"type": "text", "text": "let me look"}] if extra_text else []
        )
        content.append({"type": "tool_use", "id": f"t{i}", "name": name, "input": args})
        messages.append({"role": "assistant", "content": content})
        # A result that mentions the assistant's role in its text (escaped in JSON).
        result = call[2] if len(call) == 3 else f'{name} {sorted(args.items())} "role":"assistant"'
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": result}],
            }
        )
    return messages


def compact(messages: list[dict[str, Any]]) -> bytes:
    body = {"model": "m", "max_tokens": 10, "system": "be brief", "messages": messages}
    return json.dumps(body, separators=(",", ":")).encode()


def through_memo(messages: list[dict[str, Any]]) -> RequestBody:
    """The last body of a conversation that grew turn by turn through one memo."""
    memo = BodyMemo()
    parsed = memo.parse(compact(messages[:1]))
    for n in range(2, len(messages) + 1):
        parsed = memo.parse(compact(messages[:n]))
    return parsed


def read(messages: list[dict[str, Any]], how: str) -> RequestBody:
    if how == "memo":
        parsed = through_memo(messages)
        assert parsed.bounds, "the memo placed the body"
        return parsed
    # Spacing: not compact, so no bounds; the whole history is decoded.
    spaced = json.dumps({"model": "m", "messages": messages}).encode()
    parsed = parse_body(spaced)
    assert not parsed.bounds
    return parsed


READ = ("A", {"path": "a.py"})
READ_AGAIN = ("A", {"path": "a.py"})
OTHER = ("A", {"path": "b.py"})


@pytest.mark.parametrize("how", ["memo", "whole"])
@pytest.mark.parametrize(
    ("calls", "window", "threshold", "found"),
    [
        ([], 5, 3, None),
        ([READ, READ], 5, 3, None),
        ([OTHER, READ, READ, READ_AGAIN], 5, 3, ToolLoop("A", 3)),
        # Key order aside, the same input.
        (
            [READ, ("A", {"path": "a.py", "limit": 5}), ("A", {"limit": 5, "path": "a.py"})],
            5,
            2,
            ToolLoop("A", 2),
        ),
        # A loop the agent already left is none.
        ([READ, READ, READ, OTHER], 5, 3, None),
        # The window bounds how far back the run is counted.
        ([READ] * 6, 4, 3, ToolLoop("A", 4)),
        ([READ] * 6, 2, 2, ToolLoop("A", 2)),
        # An answer in text and the user's reply ("go on") start a new run:
        # the calls after it count (test_tool_loop_user_words: a text turn
        # the user did not answer does not break the run).
        ([READ, "thinking aloud", READ, READ], 5, 3, None),
        ([READ, READ, "thinking aloud", READ, READ, READ], 5, 3, ToolLoop("A", 3)),
        ([("B", {"cmd": "ls"}), READ, READ], 5, 3, None),
    ],
)
def test_detect(calls: list, window: int, threshold: int, found: ToolLoop | None, how: str) -> None:
    assert detect(read(history(calls), how), window=window, threshold=threshold) == found


def test_parallel_calls_in_one_message_count_one_by_one() -> None:
    messages = history([])
    messages.append(
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "x1", "name": "A", "input": {"path": "a.py"}},
                {"type": "tool_use", "id": "x2", "name": "A", "input": {"path": "a.py"}},
            ],
        }
    )
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "x1", "content": "x = 1"},
                {"type": "tool_result", "tool_use_id": "x2", "content": "x = 1"},
            ],
        }
    )
    assert detect(read(messages, "whole"), window=5, threshold=2) == ToolLoop("A", 2)


def test_a_long_history_is_read_from_its_end_only() -> None:
    # 200 turns of the same call: counting stops at the window.
    parsed = read(history([READ] * 200, extra_text=True), "memo")
    assert len(parsed.bounds) == 101
    assert detect(parsed, window=50, threshold=3) == ToolLoop("A", 50)


@given(
    st.lists(st.sampled_from([READ, OTHER, ("B", {"cmd": "ls"}), "text"]), min_size=0, max_size=40),
    st.integers(2, 8),
    st.integers(2, 8),
)
def test_the_memo_and_a_whole_read_agree(calls: list, window: int, threshold: int) -> None:
    messages = history(calls)
    expected = detect(read(messages, "whole"), window=window, threshold=threshold)
    assert detect(through_memo(messages), window=window, threshold=threshold) == expected


@given(st.lists(st.sampled_from([READ, OTHER, "text"]), min_size=0, max_size=60))
def test_bounds_lie_around_the_last_messages(calls: list) -> None:
    messages = history(calls)
    parsed = through_memo(messages)
    assert parsed.raw is not None
    b = parsed.bounds
    slices = [parsed.raw[b[k] + 1 : b[k + 1]] for k in range(len(b) - 1)]
    expected = [json.dumps(m, separators=(",", ":")).encode() for m in messages][-len(slices) :]
    assert slices == expected
    assert len(slices) == min(len(messages), 100)


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        (None, HINT),
        ("be brief", f"be brief\n\n{HINT}"),
        (
            [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            [
                {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": HINT},
            ],
        ),
    ],
)
def test_the_hint_goes_after_the_system_prompt(system: Any, expected: Any) -> None:
    fields = {"messages": msgspec.Raw(b"[]")}
    if system is not None:
        fields["system"] = msgspec.Raw(json.dumps(system).encode())

    hinted = with_hint(fields, "anthropic")

    assert json.loads(bytes(hinted["system"])) == expected
    assert hinted["messages"] == fields["messages"]
    assert ("system" in fields) == (system is not None)


def openai_history(calls: list[Call | Step]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "fix the bug"},
    ]
    for i, step in enumerate(calls):
        name, args = step[0], step[1]
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        result = step[2] if len(step) == 3 else "x = 1"
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": result})
    return messages


@pytest.mark.parametrize("how", ["memo", "whole"])
@pytest.mark.parametrize(
    ("calls", "found"),
    [
        ([OTHER, READ, READ, READ_AGAIN], ToolLoop("A", 3)),
        (
            [
                READ,
                ("A", {"path": "a.py", "n": 1}),
                ("A", {"n": 1, "path": "a.py"}),
                ("A", {"path": "a.py", "n": 1}),
            ],
            ToolLoop("A", 3),
        ),
        ([READ, READ, OTHER], None),
    ],
)
def test_detect_in_an_openai_history(calls: list, found: ToolLoop | None, how: str) -> None:
    assert detect(read(openai_history(calls), how), window=5, threshold=3) == found


@pytest.mark.parametrize(
    ("first", "expected_first"),
    [
        (
            {"role": "system", "content": "be brief"},
            {"role": "system", "content": f"be brief\n\n{HINT}"},
        ),
        (
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {
                "role": "developer",
                "content": [{"type": "text", "text": "be brief"}, {"type": "text", "text": HINT}],
            },
        ),
    ],
)
def test_an_openai_clients_hint_goes_into_its_first_system_message(
    first: dict, expected_first: dict
) -> None:
    messages = [first, {"role": "user", "content": "hi"}]
    fields = {"messages": msgspec.Raw(json.dumps(messages).encode())}

    hinted = json.loads(bytes(with_hint(fields, "openai")["messages"]))

    assert hinted == [expected_first, {"role": "user", "content": "hi"}]


def test_an_openai_history_without_a_system_message_gets_one() -> None:
    fields = {"messages": msgspec.Raw(b'[{"role":"user","content":"hi"}]')}
    hinted = json.loads(bytes(with_hint(fields, "openai")["messages"]))
    assert hinted == [{"role": "system", "content": HINT}, {"role": "user", "content": "hi"}]


POLL = ("BashOutput", {"bash_id": "bash_1"})
LOOKS: dict[str, int] = {"window": 5, "threshold": 3}


def polled(*outputs: str) -> list[Step]:
    return [(*POLL, out) for out in outputs]


@pytest.mark.parametrize("how", ["memo", "whole"])
@pytest.mark.parametrize(
    ("calls", "found"),
    [
        # Claude Code polling a background shell whose output grows: progress.
        (polled("[ 10%] cc a.c", "[ 40%] cc b.c", "[ 80%] cc c.c"), None),
        # The run of identical calls is as long as their results stay the same.
        (polled("[ 10%]", "[100%] done", "[100%] done", "[100%] done"), ToolLoop("BashOutput", 3)),
        (polled("done", "done", "other", "done"), None),
    ],
)
def test_the_same_call_with_another_result_is_no_loop(
    calls: list, found: ToolLoop | None, how: str
) -> None:
    assert detect(read(history(calls), how), **LOOKS) == found
    assert detect(read(openai_history(calls), how), **LOOKS) == found


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_an_error_result_counts_by_its_content(how: str) -> None:
    def with_errors(*contents: str) -> list[dict[str, Any]]:
        messages = history([READ] * len(contents))
        for i, content in enumerate(contents):
            [block] = messages[2 + 2 * i]["content"]
            block.update(content=content, is_error=True)
        return messages

    assert detect(read(with_errors("line 3: x", "line 9: y", "line 2: z"), how), **LOOKS) is None
    assert detect(read(with_errors(*["no such file"] * 3), how), **LOOKS) == ToolLoop("A", 3)


@pytest.mark.parametrize("how", ["memo", "whole"])
@pytest.mark.parametrize(
    "calls",
    [
        # The agent answered in text and the user asked something new.
        [READ, READ, READ, "a.py sets x."],
        [READ, READ, READ, "a.py sets x.", "and b.py?"],
    ],
)
def test_a_text_turn_after_the_run_ends_the_loop(calls: list, how: str) -> None:
    assert detect(read(history(calls), how), **LOOKS) is None


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_only_the_users_own_words_beside_the_results_end_the_loop(how: str) -> None:
    def last_turn_with(text: str) -> list[dict[str, Any]]:
        messages = history([READ] * 3)
        messages[-1]["content"].append({"type": "text", "text": text})
        return messages

    assert detect(read(last_turn_with("stop, look at b.py"), how), **LOOKS) is None
    # Claude Code's own notes to the model are not the user stepping in.
    reminder = "<system-reminder>The todo list is empty.</system-reminder>"
    assert detect(read(last_turn_with(reminder), how), **LOOKS) == ToolLoop("A", 3)


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_a_loop_needs_the_request_to_answer_the_last_call(how: str) -> None:
    messages = history([READ] * 3)
    # Claude Code's compaction request: a user turn of its own after the results.
    compaction = [*messages, {"role": "user", "content": "Summarize the conversation so far."}]
    assert detect(read(compaction, how), **LOOKS) is None
    # A request that ends in the call itself brings no result.
    assert detect(read(messages[:-1], how), **LOOKS) is None


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_an_openai_users_message_after_the_results_ends_the_loop(how: str) -> None:
    messages = openai_history([READ] * 3)
    messages.append({"role": "user", "content": "stop, look at b.py"})
    assert detect(read(messages, how), **LOOKS) is None
