"""ToolCallRepair: the text around a lifted call, prose that names the tags,
a closing tag inside an argument, escaped surrogates; at every split point."""

from __future__ import annotations

from typing import Any

import pytest

from coderouterd.translate.repair import ToolCall, ToolCallRepair
from coderouterd.translate.repair_literals import parse_keyword_arguments
from tests.unit.translate.test_repair import NAMES, run

CALL = '<tool_call>{"name": "Read", "arguments": {"file_path": "/a"}}</tool_call>'
READ_A = ("Read", {"file_path": "/a"})
BASH = ("Bash", {})


def every_split(text: str, *, strip: bool = False) -> list[Any]:
    """The result, asserted to be the same at every split point and one char at a time."""
    expected = run([text], strip=strip)
    for cut in range(len(text) + 1):
        assert run([text[:cut], text[cut:]], strip=strip) == expected, cut
    assert run(list(text), strip=strip) == expected
    return expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Let me check.\n" + CALL + "\nThen I will fix it.",
            ["Let me check.", READ_A, "\nThen I will fix it."],
        ),
        ("Let me check.\n\n" + CALL + "\nThen.", ["Let me check.", READ_A, "\n\nThen."]),
        ("I will call " + CALL + " now", ["I will call", READ_A, " now"]),
        ("I will call" + CALL + " now", ["I will call", READ_A, " now"]),
        ("call" + CALL + "now", ["call", READ_A, "\nnow"]),
        ("Reading.\n" + CALL + "\nBash()\n\nDone.", ["Reading.", READ_A, BASH, "\nDone."]),
        (
            'Reading.\n{"name": "Read", "arguments": {"file_path": "/a"}}\nDone.',
            ["Reading.", READ_A, "\nDone."],
        ),
    ],
)
def test_text_after_a_lifted_call_starts_with_one_separator(text: str, expected: list[Any]) -> None:
    assert every_split(text) == expected
    assert every_split(text, strip=True) == expected


def test_a_run_ends_at_flush_and_its_separator_with_it() -> None:
    repair = ToolCallRepair(NAMES)
    out = repair.feed("Look.\n" + CALL + "\nMore.\n" + CALL + "\n\n") + repair.flush()
    # The whitespace after the last call is dropped.
    assert [s for s in out if isinstance(s, str)] == ["Look.", "\nMore."]
    # A new run: its first text follows no call of its own.
    assert repair.feed(CALL + "\nNext.") + repair.flush() == [ToolCall(*READ_A), "Next."]


PROSE = "Qwen wraps each call in `<tool_call>` and `</tool_call>` tags, with JSON inside."


def test_prose_naming_the_tags_keeps_its_words_and_only_the_tags_may_go() -> None:
    assert every_split(PROSE) == [PROSE]
    assert every_split(PROSE, strip=True) == [
        "Qwen wraps each call in `` and `` tags, with JSON inside."
    ]
    no_tools = ToolCallRepair(frozenset(), strip_markup=True)
    out = no_tools.feed(PROSE) + no_tools.flush()
    assert "".join(s for s in out if isinstance(s, str)) == (
        "Qwen wraps each call in `` and `` tags, with JSON inside."
    )


@pytest.mark.parametrize("strip", [False, True])
def test_a_tag_that_opens_no_json_value_holds_nothing_back(strip: bool) -> None:
    repair = ToolCallRepair(NAMES, strip_markup=strip)
    first = "".join(s for s in repair.feed("See <tool_call> for that.") if isinstance(s, str))
    assert first.endswith("for that.")
    assert repair.feed(" More words") == [" More words"]


@pytest.mark.parametrize(
    "text",
    [
        # A raw line break inside a string is no JSON: decided at the line.
        '<tool_call>{"name": "Read", "arguments": {"x": "a\nb and more text',
        # Text after the value that is not the closing tag.
        '<tool_call>{"name": "Read", "arguments": {}} is how it looks',
        # A tag inside the value.
        '<tool_call>{"name": "Read" <b> and more',
        # Prose after an opening brace.
        "<tool_call>{ opens it, and the prose goes on.\n\nAnd on",
    ],
)
def test_a_tag_span_that_cannot_be_json_is_released_without_waiting_for_the_end(
    text: str,
) -> None:
    repair = ToolCallRepair(NAMES)
    assert "".join(s for s in repair.feed(text) if isinstance(s, str)) == text


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("a <tool_call>junk</tool_call> b", "a junk b"),
        ('x <tool_call>{"bad json}</tool_call> y', 'x {"bad json} y'),
        (
            'x <tool_call>{"name": "Read", "arguments": {"a": 1}</tool_call> y',
            'x {"name": "Read", "arguments": {"a": 1} y',
        ),
    ],
)
def test_strip_mode_drops_only_the_tags_of_what_is_no_call(text: str, stripped: str) -> None:
    assert every_split(text, strip=True) == [stripped]
    assert every_split(text) == [text]


WRITE_DOC = (
    '<tool_call>{"name": "Write", "arguments": {"file_path": "fmt.md", '
    '"content": "End each call with </tool_call>. A \\"quote\\" and a }."}}</tool_call>'
)


@pytest.mark.parametrize("strip", [False, True])
def test_a_closing_tag_inside_an_argument_string_is_data(strip: bool) -> None:
    assert every_split("Writing.\n" + WRITE_DOC + "\nDone.", strip=strip) == [
        "Writing.",
        (
            "Write",
            {
                "file_path": "fmt.md",
                "content": 'End each call with </tool_call>. A "quote" and a }.',
            },
        ),
        "\nDone.",
    ]


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ('s="hi \\ud83d\\ude00"', {"s": "hi \U0001f600"}),
        ("s='\\uD83D\\uDE00!'", {"s": "\U0001f600!"}),
        ('s="\\ud83d"', None),
        ('s="\\ude00"', None),
        ('s="\\ude00\\ud83d"', None),
        ('s="\\ud83d\\u0041"', None),
    ],
)
def test_escaped_surrogates_pair_up_or_the_literal_is_refused(
    inner: str, expected: dict[str, Any] | None
) -> None:
    assert parse_keyword_arguments(inner) == expected


def test_call_syntax_with_a_lone_surrogate_is_left_as_text() -> None:
    text = 'Write(file_path="a.md", content="hi \\ud83d")\n'
    assert every_split(text) == [text]
    assert every_split('Write(content="\\ud83d\\ude00")') == [("Write", {"content": "\U0001f600"})]
