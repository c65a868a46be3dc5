"""Recognising tool calls that a model printed as text (pure, no I/O).

Owns what a candidate span is and what it means: the candidate classes that
consume a span incrementally, decide where it ends and turn it into calls
(the literals they read are `repair_literals`'). The streaming driver in
`repair` decides where a candidate may start and what happens to the text.

Recognised, for offered tool names only and arguments that are a JSON object:

* `<tool_call>{"name": …, "arguments": {…}}</tool_call>` anywhere in the
  text (arguments may be a JSON string; a list of calls is accepted too;
  a `</tool_call>` inside a JSON string is data);
* a code fence opened by a line that is exactly ```json (any case) or ```, holding
  one call object, a list of them or a `{"tool_calls": […]}` envelope;
* a bare call object or envelope that makes up whole lines: it starts a line
  (after indentation) and nothing but whitespace follows it on its last line;
* call syntax `Name(key="value", n=1, obj={…})` making up whole lines, with
  keyword arguments whose values are JSON-ish literals.

A call object is `{"name", "arguments" | "parameters"}` or the OpenAI
`{"function": {"name", "arguments"}}` item.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from coderouterd.translate.repair_literals import (
    Brackets,
    decode,
    parse_keyword_arguments,
)

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
_NON_WS = re.compile(r"\S")
_NON_BLANK = re.compile(r"[^ \t\r]")
_FENCE_LANGUAGES = frozenset({"", "json"})
_MAX_INFO = 16
Lifted = tuple[str, dict[str, Any]]


class ScanState(Enum):
    HEAD = "head"  # at a line start, only indentation seen
    MID = "mid"  # inside a line
    CODE_HEAD = "code_head"  # at a line start inside a foreign code fence
    CODE_MID = "code_mid"  # inside a line inside a foreign code fence


# candidates: each consumes a span incrementally; step() returns the end of
# the span once it is decided (setting `complete`) or -1 when it needs more.


class Candidate:
    __slots__ = ("complete", "ends_line")

    def __init__(self) -> None:
        self.complete = False
        self.ends_line = False

    def step(self, s: str, pos: int) -> int:
        raise NotImplementedError

    def at_eof(self) -> bool:
        """Whether the span held so far is complete when the text ends here."""
        return False

    def calls(self, span: str, names: frozenset[str] | None) -> list[Lifted] | None:
        """The calls the span holds, of the given names (None: of any name)."""
        raise NotImplementedError

    def code_state(self, *, over_limit: bool) -> ScanState | None:
        """Where scanning resumes after a failure, if inside a foreign code fence."""
        return None


class TagCandidate(Candidate):
    """`<tool_call>`, a JSON value, `</tool_call>`.

    The tag opens a candidate only when a JSON value follows it (`{` or `[`
    after whitespace): prose that names the tag is decided at once. The
    closing tag is looked for after the value, skipping its strings, so an
    argument may hold `</tool_call>`; what cannot be JSON ends the span.
    """

    __slots__ = ("_brackets", "_matched", "_phase")

    def __init__(self) -> None:
        super().__init__()
        self._phase = "first"
        self._brackets = Brackets('"', json=True)
        self._matched = 0  # characters of the closing tag seen

    def step(self, s: str, pos: int) -> int:
        if self._phase == "first":
            m = _NON_WS.search(s, pos)
            if m is None:
                return -1
            if s[m.start()] not in "{[":
                return m.start()
            self._phase, pos = "body", m.start()
        if self._phase == "body":
            pos = self._brackets.advance(s, pos)
            if pos < 0 or self._brackets.broken:
                return pos
            self._phase = "after"
        return self._closing(s, pos)

    def _closing(self, s: str, pos: int) -> int:
        """After the value: whitespace, then the closing tag or the span ends."""
        if self._matched == 0:
            m = _NON_WS.search(s, pos)
            if m is None:
                return -1
            pos = m.start()
        k = min(len(s) - pos, len(CLOSE_TAG) - self._matched)
        if s[pos : pos + k] != CLOSE_TAG[self._matched : self._matched + k]:
            return pos
        self._matched += k
        if self._matched < len(CLOSE_TAG):
            return -1
        self.complete = True
        return pos + k

    def calls(self, span: str, names: frozenset[str] | None) -> list[Lifted] | None:
        value = decode(span[len(OPEN_TAG) : -len(CLOSE_TAG)])
        return _calls(value, names, allow_list=True, require_args=False)


class FenceCandidate(Candidate):
    __slots__ = ("_code", "_info", "_info_len", "_phase", "_tail")

    def __init__(self) -> None:
        super().__init__()
        self._phase = "info"
        self._info: list[str] = []
        self._info_len = 0
        self._tail = ""
        self._code: ScanState | None = None

    def step(self, s: str, pos: int) -> int:
        if self._phase == "info":
            i = s.find("\n", pos)
            if i == -1:
                self._info.append(s[pos:])
                self._info_len += len(s) - pos
                return self._fail(ScanState.CODE_MID, len(s)) if self._info_len > _MAX_INFO else -1
            language = ("".join(self._info) + s[pos:i]).strip().lower()
            if language not in _FENCE_LANGUAGES:
                return self._fail(ScanState.CODE_HEAD, i + 1)
            self._phase, pos = "first", i + 1
        if self._phase == "first":
            m = _NON_WS.search(s, pos)
            if m is None:
                return -1
            if s[m.start()] not in "{[":
                return self._fail(ScanState.CODE_HEAD, m.start())
            self._phase, pos = "body", m.start() + 1
        window = self._tail + s[pos:]
        k = window.find("\n```")
        if k == -1:
            self._tail = window[-3:]
            return -1
        self.complete = True
        return pos + k - len(self._tail) + 4

    def _fail(self, code: ScanState, end: int) -> int:
        self._code = code
        return end

    def code_state(self, *, over_limit: bool) -> ScanState | None:
        return ScanState.CODE_MID if over_limit else self._code

    def calls(self, span: str, names: frozenset[str] | None) -> list[Lifted] | None:
        body = span.partition("\n")[2][:-3]
        return _calls(decode(body), names, allow_list=True, require_args=True)


class _WholeLines(Candidate):
    """A bracketed span that must start a line and end one: bare JSON or a call."""

    __slots__ = ("_brackets", "_phase")

    _first_chars: str = ""

    def __init__(self, quotes: str) -> None:
        super().__init__()
        self._phase = "first"
        self._brackets = Brackets(quotes, depth=1)  # the opening bracket is consumed

    def step(self, s: str, pos: int) -> int:
        if self._phase == "first":
            m = _NON_WS.search(s, pos)
            if m is None:
                return -1
            if not self._may_start(s[m.start()]):
                return m.start()
            self._phase, pos = "body", m.start()
        if self._phase == "body":
            end = self._brackets.advance(s, pos)
            if end < 0:
                return -1
            self._phase, pos = "after", end
        m = _NON_BLANK.search(s, pos)
        if m is None:
            return -1
        if s[m.start()] != "\n":
            return m.start()
        self.complete = self.ends_line = True
        return m.start() + 1

    def _may_start(self, c: str) -> bool:
        raise NotImplementedError

    def at_eof(self) -> bool:
        self.ends_line = self._phase == "after"
        return self.ends_line


class BareCandidate(_WholeLines):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__('"')

    def _may_start(self, c: str) -> bool:
        return c in '"}'

    def calls(self, span: str, names: frozenset[str] | None) -> list[Lifted] | None:
        return _calls(decode(span), names, allow_list=False, require_args=True)

    @staticmethod
    def opens_call(head: str, names: frozenset[str]) -> bool:
        """Whether an object beginning `head` begins as a call of one of
        `names` (`{"name": "Write"`): reasoning drafts other objects."""
        m = _NAMED.match(head)
        return m is not None and m[1] in names


# The start of an object that names a call.
_NAMED = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]*)"')


class CallCandidate(_WholeLines):
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        super().__init__("\"'")
        self._name = name

    def _may_start(self, c: str) -> bool:
        return c in {")", "_"} or c.isalpha()

    def calls(self, span: str, names: frozenset[str] | None) -> list[Lifted] | None:
        body = span.rstrip()
        if not body.endswith(")"):
            return None  # closed by a bracket of another kind
        args = parse_keyword_arguments(body[body.index("(") + 1 : -1])
        return None if args is None else [(self._name, args)]


# parsing


def _calls(
    value: Any, names: frozenset[str] | None, *, allow_list: bool, require_args: bool
) -> list[Lifted] | None:
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        items: list[Any] = value["tool_calls"]
    elif isinstance(value, list) and allow_list:
        items = value
    else:
        items = [value]
    calls = [_call_of(item, names, require_args=require_args) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def _call_of(obj: Any, names: frozenset[str] | None, *, require_args: bool) -> Lifted | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or (names is not None and name not in names):
        return None
    if "arguments" in obj:
        raw = obj["arguments"]
    elif "parameters" in obj:
        raw = obj["parameters"]
    elif require_args:
        return None
    else:
        raw = {}
    if isinstance(raw, str):
        raw = decode(raw) if raw.strip() else {}
    return (name, raw) if isinstance(raw, dict) else None
