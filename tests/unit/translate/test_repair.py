"""ToolCallRepair lifts tool calls printed as text, however the text is chunked."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.translate.repair import (
    Segment,
    ToolCall,
    ToolCallRepair,
)
from coderouterd.translate.repair_literals import parse_keyword_arguments

NAMES = frozenset({"Read", "Write", "Bash"})


def run(pieces: list[str], *, names: frozenset[str] = NAMES, strip: bool = False) -> list[Any]:
    """Feeds the pieces and flushes; neighbouring texts joined, calls as (name, args)."""
    repair = ToolCallRepair(names, strip_markup=strip)
    raw: list[Segment] = []
    for piece in pieces:
        raw += repair.feed(piece)
    raw += repair.flush()
    out: list[Any] = []
    for seg in raw:
        if isinstance(seg, ToolCall):
            out.append((seg.name, seg.arguments))
        elif out and isinstance(out[-1], str):
            out[-1] += seg
        else:
            assert seg, "empty text segments are never returned"
            out.append(seg)
    return out


def every_split(text: str, **kw: Any) -> list[Any]:
    """The result, asserted to be the same at every split point and one char at a time."""
    expected = run([text], **kw)
    for cut in range(len(text) + 1):
        assert run([text[:cut], text[cut:]], **kw) == expected, cut
    assert run(list(text), **kw) == expected
    return expected


READ_A = ("Read", {"file_path": "/a"})
LIFTED = [
    (
        'I will read it.\n\n<tool_call>\n{"name": "Read", "arguments": {"file_path": "/a"}}\n'
        "</tool_call>\n\nDone.",
        ["I will read it.", READ_A, "\n\nDone."],
    ),
    (
        '<tool_call>{"name": "Read", "arguments": "{\\"file_path\\": \\"/a\\"}"}</tool_call>',
        [READ_A],
    ),
    (
        '<tool_call>[{"name": "Read", "arguments": {"file_path": "/a"}}, '
        '{"name": "Bash", "arguments": {"command": "ls"}}]</tool_call>',
        [READ_A, ("Bash", {"command": "ls"})],
    ),
    ('Sure: <tool_call>{"name": "Bash"}</tool_call>', ["Sure:", ("Bash", {})]),
    (
        'Reading:\n```json\n{"name": "Read", "arguments": {"file_path": "/a"}}\n```\nok',
        ["Reading:", READ_A, "\nok"],
    ),
    (
        '```\n[{"name": "Read", "arguments": {"file_path": "/a"}}, '
        '{"name": "Bash", "parameters": {"command": "ls"}}]\n```',
        [READ_A, ("Bash", {"command": "ls"})],
    ),
    (
        '```JSON\n{"tool_calls": [{"id": "x", "type": "function", "function": '
        '{"name": "Read", "arguments": "{\\"file_path\\":\\"/a\\"}"}}]}\n```',
        [READ_A],
    ),
    ('text\n{"name": "Read", "parameters": {"file_path": "/a"}}\nmore', ["text", READ_A, "\nmore"]),
    (
        '  {\n    "name": "Read",\n    "arguments": {"file_path": "/a"}\n  }  \n',
        [READ_A],
    ),
    (
        '{"tool_calls": [{"function": {"name": "Read", "arguments": {"file_path": "/a"}}}]}',
        [READ_A],
    ),
    (
        "I'll write it.\nWrite(file_path=\"/src/x\", content='it\\'s \"ok\"\\n', n=-3, r=1.5e2,"
        ' flag=true, none=null, obj={"a": [1, {"b": "}"}]}, arr=[1, 2])\n',
        [
            "I'll write it.",
            (
                "Write",
                {
                    "file_path": "/src/x",
                    "content": 'it\'s "ok"\n',
                    "n": -3,
                    "r": 150.0,
                    "flag": True,
                    "none": None,
                    "obj": {"a": [1, {"b": "}"}]},
                    "arr": [1, 2],
                },
            ),
        ],
    ),
    (
        "Bash(command=\"echo 'a(b)'\", timeout=None)",
        [("Bash", {"command": "echo 'a(b)'", "timeout": None})],
    ),
    ("Bash()", [("Bash", {})]),
]


@pytest.mark.parametrize(("text", "expected"), LIFTED)
def test_each_syntax_is_lifted_at_every_split_point(text: str, expected: list[Any]) -> None:
    assert every_split(text) == expected


LEFT_AS_TEXT = [
    '<tool_call>{"name": "Delete", "arguments": {"path": "/"}}</tool_call>',  # not offered
    '<tool_call>{"name": "Read", "arguments": {bad json}}</tool_call> after',
    '<tool_call>{"name": "Read", "arguments": "not json"}</tool_call>',
    '<tool_call>{"name": "Read", "arguments": [1, 2]}</tool_call>',
    '<tool_call>{"name": "Read", "arguments": {}}',  # never closed
    '```json\n{"name": "Nope", "arguments": {}}\n```',
    '```json\n{"name": "Read"}\n```',  # a bare call object needs its arguments
    '```python\n{"name": "Read", "arguments": {"file_path": "/a"}}\n```',
    '{"name": "Read", "arguments": {"file_path": "/a"}} is the call',
    'Call {"name": "Read", "arguments": {"file_path": "/a"}}',
    '{"name": "Read", "arguments": {"file_path": "/a"}',  # unbalanced
    '[{"name": "Read", "arguments": {"file_path": "/a"}}]',  # bare lists are not lifted
    '{"name": "John", "age": 30}\n',
    "{foo} is a placeholder\n",
    'Use Write(file_path="/x") here',
    'Write(file_path="/x") and more',
    'Write("/x")',  # positional
    "Write(a=1 b=2)",
    "Write(a=1, a=2)",
    "Write(a=undefined)",
    'Writer(file_path="/x")',
    "Delete(path='/')",
    "Read the file, then Write it.",
    "a < b and <tool> and <tool_ca",
]


@pytest.mark.parametrize("text", LEFT_AS_TEXT)
def test_what_is_not_a_valid_offered_call_is_released_verbatim(text: str) -> None:
    assert every_split(text) == [text]


def test_names_not_offered_are_never_lifted_even_when_well_formed() -> None:
    text = '<tool_call>{"name": "Read", "arguments": {}}</tool_call>'
    assert run([text], names=frozenset({"Bash"})) == [text]
    assert run([text], names=frozenset()) == [text]


def test_text_after_a_foreign_code_fence_is_scanned_again() -> None:
    text = '```python\n{\n```\n{"name": "Read", "arguments": {"file_path": "/a"}}\n```\ncode\n```\n'
    assert every_split(text) == [
        "```python\n{\n```",
        READ_A,
        "\n```\ncode\n```\n",
    ]


def test_plain_text_is_released_at_once_and_only_a_candidate_is_held() -> None:
    repair = ToolCallRepair(NAMES)
    assert repair.feed("Hello there") == ["Hello there"]
    assert repair.feed(", see <b>bold</b>") == [", see <b>bold</b>"]
    assert repair.feed(" and <tool") == [" and"]  # the space is held with the tag prefix
    assert repair.feed("kit>") == [" <toolkit>"]
    assert repair.feed("\nWr") == []
    assert repair.feed("iting.") == ["\nWriting."]


def test_repairs_are_counted() -> None:
    repair = ToolCallRepair(NAMES)
    out = repair.feed('<tool_call>{"name": "Bash", "arguments": {}}</tool_call>\nBash()\n')
    out += repair.flush()
    assert [seg.name for seg in out if isinstance(seg, ToolCall)] == ["Bash", "Bash"]
    assert repair.repairs == 2


def test_a_candidate_longer_than_the_limit_is_given_up_as_text() -> None:
    repair = ToolCallRepair(NAMES, max_candidate=100)
    text = '{"name": "Read", "arguments": {"x": "' + "a" * 200 + '"}}\n'
    out: list[Segment] = []
    for i in range(0, len(text), 10):
        out += repair.feed(text[i : i + 10])
    out += repair.flush()
    assert "".join(seg for seg in out if isinstance(seg, str)) == text
    assert repair.repairs == 0


def test_flush_ends_the_run_and_the_next_text_starts_a_line() -> None:
    repair = ToolCallRepair(NAMES)
    assert repair.feed("Wri") == []
    assert repair.flush() == ["Wri"]
    out = repair.feed('Bash(command="ls")') + repair.flush()
    assert [(s.name, s.arguments) for s in out if isinstance(s, ToolCall)] == [
        ("Bash", {"command": "ls"})
    ]


def test_strip_mode_drops_tool_markup_that_cannot_be_lifted() -> None:
    text = 'a <tool_call>{"name": "Nope", "arguments": {}}</tool_call> b'
    assert every_split(text, strip=True) == ["a b"]
    lifted = 'x <tool_call>{"name": "Read", "arguments": {"file_path": "/a"}}</tool_call> y'
    assert every_split(lifted, strip=True) == ["x", READ_A, " y"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a <tool_call>junk</tool_call> b", "a junk b"),
        ("keep </tool_call>this", "keep this"),
        ("unclosed <tool_call>rest of text", "unclosed rest of text"),
        ("before\n\n<tool_call>\n{}\n</tool_call>\n\nafter", "before\n\n{}\nafter"),
        ("no markup at all < here", "no markup at all < here"),
        ('{"name": "Read", "arguments": {}}', '{"name": "Read", "arguments": {}}'),
    ],
)
def test_strip_tool_markup(text: str, expected: str) -> None:
    """Tool-call tags removed from text, what they enclose kept."""
    stripper = ToolCallRepair(frozenset(), strip_markup=True)
    segments = stripper.feed(text) + stripper.flush()
    assert "".join(seg for seg in segments if isinstance(seg, str)) == expected


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ("", {}),
        ("a=1, b='x'", {"a": 1, "b": "x"}),
        ('s="\\u00e9\\t\\\\"', {"s": "é\t\\"}),
        ("s='a\\qb'", {"s": "a\\qb"}),
        ("x=True, y=False, z=None", {"x": True, "y": False, "z": None}),
        ("a=1,", {"a": 1}),
        ('o={"k": "v"}', {"o": {"k": "v"}}),
        ("o={'k': 'v'}", None),
        ("a=", None),
        ("=1", None),
        ("a=truely", None),
    ],
)
def test_parse_keyword_arguments(inner: str, expected: dict[str, Any] | None) -> None:
    assert parse_keyword_arguments(inner) == expected


@given(
    st.lists(
        st.sampled_from(
            [
                "text ",
                "\n",
                "<tool_call>",
                "</tool_call>",
                '{"name": "Read", "arguments": {"file_path": "/a"}}',
                "```",
                "```json\n",
                "Bash(",
                'command="ls"',
                ")",
                "{",
                "}",
                "Wr",
                "<",
                '"',
                "'",
                "  ",
                "`",
                "\\",
                '"</tool_call>"',
            ]
        ),
        max_size=14,
    ),
    st.data(),
)
def test_chunking_never_changes_the_result(parts: list[str], data: st.DataObject) -> None:
    text = "".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    for strip in (False, True):
        whole = run([text], strip=strip)
        assert run(pieces, strip=strip) == whole
        if not any(isinstance(seg, tuple) for seg in whole) and not strip:
            assert "".join(whole) == text  # nothing lifted: the text comes back verbatim


def repair_work(text: str, chunk: int, *, strip: bool) -> tuple[int, list[Segment]]:
    repair = ToolCallRepair(NAMES, strip_markup=strip)
    out: list[Segment] = []
    for i in range(0, len(text), chunk):
        out += repair.feed(text[i : i + chunk])
    out += repair.flush()
    return repair.scanned, out


PROSE = "Some prose with < signs, {braces} and `ticks` ReadMe Writer Bash-ing along.\n"
UNFINISHED = '{"name": "Read", "arguments": {"x": "' + "a" * 20_000 + "\n"


@pytest.mark.parametrize(("line", "chunk"), [(PROSE, 97), (UNFINISHED, 50)])
def test_the_work_of_repair_grows_linearly_with_the_text(line: str, chunk: int) -> None:
    """Characters scanned, not seconds: doubling the text at most doubles the work.

    The unfinished candidates are never closed: each is held until the next
    line shows that it is not a call, the case where re-scanning held text on
    every chunk would make the work quadratic.
    """
    copies = 200_000 // len(line) + 1
    small, out = repair_work(line * copies, chunk, strip=True)
    large, _ = repair_work(line * 2 * copies, chunk, strip=True)
    assert "".join(s for s in out if isinstance(s, str)) == line * copies
    assert small <= 3 * len(line) * copies
    assert large <= 2.1 * small
