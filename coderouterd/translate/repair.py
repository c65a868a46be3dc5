"""Lifting tool calls that a model printed as text (pure, streaming).

Local models often write a tool call into the content and finish with
`stop`. `ToolCallRepair` recognises, for offered tool names only and
arguments that are a JSON object:

* `<tool_call>{"name": …, "arguments": {…}}</tool_call>` anywhere in the
  text (arguments may be a JSON string; a list of calls is accepted too);
* a code fence opened by a line that is exactly ```json (any case) or ```, holding
  one call object, a list of them or a `{"tool_calls": […]}` envelope;
* a bare call object or envelope that makes up whole lines: it starts a line
  (after indentation) and nothing but whitespace follows it on its last line;
* call syntax `Name(key="value", n=1, obj={…})` making up whole lines, with
  keyword arguments whose values are JSON-ish literals.

A call object is `{"name", "arguments" | "parameters"}` or the OpenAI
`{"function": {"name", "arguments"}}` item. Bare objects, fences and call
syntax must start a line: prose that mentions a call mid-sentence is left
alone. Text inside other code fences (```python …) is never lifted.

Streaming: plain text is released as soon as it cannot start a candidate;
only a candidate span (and trailing whitespace, so that it can be trimmed
when a call follows) is held. A candidate that turns out not to be a call is
released verbatim. Each character is examined a bounded number of times; a
candidate longer than `max_candidate` is given up and released as text.

Whitespace around a lifted call is dropped: the text before it and after it
become separate segments. With `strip_markup`, `<tool_call>…</tool_call>`
spans that cannot be lifted and stray `<tool_call>` / `</tool_call>` tags are
dropped instead of released.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

import msgspec

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
DEFAULT_MAX_CANDIDATE = 64 * 1024
_MAX_INDENT = 64
_IDENT = re.compile(r"[A-Za-z0-9_-]+")
_MID_WITH_TAGS = re.compile(r"[\n<]")
_NON_WS = re.compile(r"\S")
_NON_BLANK = re.compile(r"[^ \t\r]")
_OUT_RE = {'"': re.compile(r'[\[\]{}()"]'), "\"'": re.compile(r"[\[\]{}()\"']")}
_IN_RE = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]")}
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")
_SEPARATOR = re.compile(r"\s*(,?)\s*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z]+")
_WORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_STRING = {
    '"': re.compile(r'"((?:[^"\\]|\\.)*)"', re.S),
    "'": re.compile(r"'((?:[^'\\]|\\.)*)'", re.S),
}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}
_FENCE_LANGUAGES = frozenset({"", "json"})
_MAX_INFO = 16
_INVALID = object()


class ToolCall(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: dict[str, Any]


Segment = str | ToolCall


class _State(Enum):
    HEAD = "head"  # at a line start, only indentation seen
    MID = "mid"  # inside a line
    CODE_HEAD = "code_head"  # at a line start inside a foreign code fence
    CODE_MID = "code_mid"  # inside a line inside a foreign code fence


class ToolCallRepair:
    """Feed text as it arrives; get text and lifted `ToolCall`s back in order."""

    __slots__ = (
        "_cand",
        "_cand_len",
        "_cand_parts",
        "_max",
        "_names",
        "_out",
        "_pending",
        "_prefixes",
        "_repairs",
        "_run",
        "_state",
        "_strip",
        "_tags",
        "_trim_lead",
        "_ws",
    )

    def __init__(
        self,
        tool_names: frozenset[str],
        *,
        strip_markup: bool = False,
        max_candidate: int = DEFAULT_MAX_CANDIDATE,
    ) -> None:
        self._names = tool_names
        self._prefixes = frozenset(n[:k] for n in tool_names for k in range(1, len(n) + 1))
        self._strip = strip_markup
        self._tags = bool(tool_names) or strip_markup
        self._max = max_candidate
        self._repairs = 0
        self._state = _State.HEAD
        self._pending = ""
        self._cand: _Candidate | None = None
        self._cand_parts: list[str] = []
        self._cand_len = 0
        self._ws: list[str] = []  # trailing whitespace of released text, held
        self._trim_lead = False
        self._out: list[Segment] = []
        self._run: list[str] = []  # text released since the last segment boundary

    @property
    def repairs(self) -> int:
        """How many tool calls were lifted so far."""
        return self._repairs

    def feed(self, text: str) -> list[Segment]:
        s = self._pending + text if self._pending else text
        self._pending = ""
        self._scan(s, final=False)
        return self._take()

    def flush(self) -> list[Segment]:
        """End the run: decide the open candidate, release everything held.

        The object can be fed again; the next text starts a new line.
        """
        s, self._pending = self._pending, ""
        self._scan(s, final=True)
        self._run.extend(self._ws)
        self._ws = []
        self._trim_lead = False
        self._state = _State.HEAD
        return self._take()

    def _take(self) -> list[Segment]:
        self._close_run()
        out, self._out = self._out, []
        return out

    def _close_run(self) -> None:
        if self._run:
            self._out.append("".join(self._run))
            self._run = []

    # scanning

    def _scan(self, s: str, *, final: bool) -> None:
        pos = 0
        n = len(s)
        while True:
            if self._cand is not None:
                pos = self._advance(s, pos, final=final)
                if self._cand is not None:
                    return
                continue
            if pos >= n:
                return
            state = self._state
            if state is _State.HEAD:
                pos = self._head(s, pos, final=final)
            elif state is _State.MID:
                pos = self._mid(s, pos, final=final)
            elif state is _State.CODE_HEAD:
                pos = self._code_head(s, pos, final=final)
            else:
                pos = self._code_mid(s, pos)

    def _hold(self, s: str, pos: int) -> int:
        self._pending = s[pos:]
        return len(s)

    def _head(self, s: str, pos: int, *, final: bool) -> int:
        n = len(s)
        j = pos
        while j < n and s[j] in " \t" and j - pos <= _MAX_INDENT:
            j += 1
        if self._names and j - pos <= _MAX_INDENT:
            opener = self._opener(s, j, final=final)
            if opener is True:
                return self._hold(s, pos)
            if opener:
                return self._begin(opener[0], s, pos, opener[1])
        self._state = _State.MID
        return pos

    def _opener(self, s: str, j: int, *, final: bool) -> tuple[_Candidate, int] | bool:
        """The candidate a line opens at j and where its span goes on; True if undecided."""
        if j == len(s):
            return not final
        if s[j] == "{":
            return _Bare(), j + 1
        if s[j] == "`":
            k = j
            while k < len(s) and k - j < 3 and s[k] == "`":
                k += 1
            return (_Fence(), k) if k - j == 3 else (k == len(s) and not final)
        return self._call_opener(s, j, final=final)

    def _call_opener(self, s: str, j: int, *, final: bool) -> tuple[_Candidate, int] | bool:
        m = _IDENT.match(s, j)
        if m is None or m.group() not in self._prefixes:
            return False
        if m.end() == len(s):
            return not final
        if s[m.end()] == "(" and m.group() in self._names:
            return _Call(m.group()), m.end() + 1
        return False

    def _mid(self, s: str, pos: int, *, final: bool) -> int:
        if not self._tags:
            i = s.find("\n", pos)
        else:
            m = _MID_WITH_TAGS.search(s, pos)
            i = -1 if m is None else m.start()
        if i == -1:
            self._text(s[pos:])
            return len(s)
        if s[i] == "\n":
            self._text(s[pos : i + 1])
            self._state = _State.HEAD
            return i + 1
        self._text(s[pos:i])
        if s.startswith(OPEN_TAG, i):
            return self._begin(_Tag(), s, i, i + len(OPEN_TAG))
        if self._strip and s.startswith(CLOSE_TAG, i):
            self._drop_markup()
            return i + len(CLOSE_TAG)
        rest = s[i:]
        if not final and len(rest) < len(CLOSE_TAG) and self._could_be_tag(rest):
            return self._hold(s, i)
        self._text("<")
        return i + 1

    def _could_be_tag(self, rest: str) -> bool:
        return OPEN_TAG.startswith(rest) or (self._strip and CLOSE_TAG.startswith(rest))

    def _code_head(self, s: str, pos: int, *, final: bool) -> int:
        n = len(s)
        j = pos
        while j < n and s[j] in " \t" and j - pos <= _MAX_INDENT:
            j += 1
        k = j
        while k < n and k - j < 3 and s[k] == "`":
            k += 1
        if k - j == 3:
            self._text(s[pos:k])
            self._state = _State.MID  # the closing fence: back to prose
            return k
        if k == n and not final:
            return self._hold(s, pos)
        self._state = _State.CODE_MID
        return pos

    def _code_mid(self, s: str, pos: int) -> int:
        i = s.find("\n", pos)
        if i == -1:
            self._text(s[pos:])
            return len(s)
        self._text(s[pos : i + 1])
        self._state = _State.CODE_HEAD
        return i + 1

    # candidates

    def _begin(self, cand: _Candidate, s: str, start: int, pos: int) -> int:
        self._cand = cand
        self._cand_parts = [s[start:pos]]
        self._cand_len = pos - start
        return pos

    def _advance(self, s: str, pos: int, *, final: bool) -> int:
        cand = self._cand
        assert cand is not None
        end = cand.step(s, pos)
        if end < 0:
            self._cand_parts.append(s[pos:])
            self._cand_len += len(s) - pos
            if final:
                self._decide(cand.at_eof())
            elif self._cand_len > self._max:
                self._decide(False, over_limit=True)
            return len(s)
        self._cand_parts.append(s[pos:end])
        self._cand_len += end - pos
        self._decide(cand.complete)
        return end

    def _decide(self, complete: bool, *, over_limit: bool = False) -> None:
        cand = self._cand
        assert cand is not None
        span = "".join(self._cand_parts)
        self._cand = None
        self._cand_parts = []
        self._cand_len = 0
        calls = cand.calls(span, self._names) if complete else None
        if calls:
            self._lift(calls)
            self._state = _State.HEAD if cand.ends_line else _State.MID
            return
        if isinstance(cand, _Tag) and self._strip:
            self._drop_markup()
            if not complete:
                self._text(span[len(OPEN_TAG) :])
            self._state = _State.MID
            return
        self._text(span)
        code = cand.code_state(over_limit=over_limit)
        if code is not None:
            self._state = code
        else:
            self._state = _State.HEAD if span.endswith("\n") else _State.MID

    def _lift(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self._ws = []
        self._close_run()
        for name, arguments in calls:
            self._repairs += 1
            self._out.append(ToolCall(f"toolu_repair_{self._repairs}", name, arguments))
        self._trim_lead = True

    def _drop_markup(self) -> None:
        self._trim_lead = True

    # output

    def _text(self, t: str) -> None:
        if not t:
            return
        if self._trim_lead:
            t = t.lstrip()
            if not t:
                return
            self._trim_lead = False
        body = t.rstrip()
        if not body:
            self._ws.append(t)
            return
        self._run.extend(self._ws)
        self._run.append(body)
        self._ws = [t[len(body) :]] if len(body) < len(t) else []


def strip_tool_markup(text: str) -> str:
    """Remove `<tool_call>…</tool_call>` spans and stray tool-call tags from text."""
    stripper = ToolCallRepair(frozenset(), strip_markup=True)
    segments = stripper.feed(text) + stripper.flush()
    return "".join(seg for seg in segments if isinstance(seg, str))


# candidates: each consumes a span incrementally; step() returns the end of
# the span once it is decided (setting `complete`) or -1 when it needs more.


class _Candidate:
    __slots__ = ("complete", "ends_line")

    def __init__(self) -> None:
        self.complete = False
        self.ends_line = False

    def step(self, s: str, pos: int) -> int:
        raise NotImplementedError

    def at_eof(self) -> bool:
        """Whether the span held so far is complete when the text ends here."""
        return False

    def calls(self, span: str, names: frozenset[str]) -> list[_Lifted] | None:
        raise NotImplementedError

    def code_state(self, *, over_limit: bool) -> _State | None:
        """Where scanning resumes after a failure, if inside a foreign code fence."""
        return None


_Lifted = tuple[str, dict[str, Any]]


class _Tag(_Candidate):
    __slots__ = ("_tail",)

    def __init__(self) -> None:
        super().__init__()
        self._tail = ""

    def step(self, s: str, pos: int) -> int:
        window = self._tail + s[pos:]
        k = window.find(CLOSE_TAG)
        if k == -1:
            self._tail = window[-(len(CLOSE_TAG) - 1) :]
            return -1
        self.complete = True
        return pos + k - len(self._tail) + len(CLOSE_TAG)

    def calls(self, span: str, names: frozenset[str]) -> list[_Lifted] | None:
        value = _decode(span[len(OPEN_TAG) : -len(CLOSE_TAG)])
        return _calls(value, names, allow_list=True, require_args=False)


class _Fence(_Candidate):
    __slots__ = ("_code", "_info", "_info_len", "_phase", "_tail")

    def __init__(self) -> None:
        super().__init__()
        self._phase = "info"
        self._info: list[str] = []
        self._info_len = 0
        self._tail = ""
        self._code: _State | None = None

    def step(self, s: str, pos: int) -> int:
        if self._phase == "info":
            i = s.find("\n", pos)
            if i == -1:
                self._info.append(s[pos:])
                self._info_len += len(s) - pos
                return self._fail(_State.CODE_MID, len(s)) if self._info_len > _MAX_INFO else -1
            language = ("".join(self._info) + s[pos:i]).strip().lower()
            if language not in _FENCE_LANGUAGES:
                return self._fail(_State.CODE_HEAD, i + 1)
            self._phase, pos = "first", i + 1
        if self._phase == "first":
            m = _NON_WS.search(s, pos)
            if m is None:
                return -1
            if s[m.start()] not in "{[":
                return self._fail(_State.CODE_HEAD, m.start())
            self._phase, pos = "body", m.start() + 1
        window = self._tail + s[pos:]
        k = window.find("\n```")
        if k == -1:
            self._tail = window[-3:]
            return -1
        self.complete = True
        return pos + k - len(self._tail) + 4

    def _fail(self, code: _State, end: int) -> int:
        self._code = code
        return end

    def code_state(self, *, over_limit: bool) -> _State | None:
        return _State.CODE_MID if over_limit else self._code

    def calls(self, span: str, names: frozenset[str]) -> list[_Lifted] | None:
        body = span.partition("\n")[2][:-3]
        return _calls(_decode(body), names, allow_list=True, require_args=True)


class _WholeLines(_Candidate):
    """A bracketed span that must start a line and end one: bare JSON or a call."""

    __slots__ = ("_brackets", "_phase")

    _first_chars: str = ""

    def __init__(self, quotes: str) -> None:
        super().__init__()
        self._phase = "first"
        self._brackets = _Brackets(quotes, depth=1)  # the opening bracket is consumed

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


class _Bare(_WholeLines):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__('"')

    def _may_start(self, c: str) -> bool:
        return c in '"}'

    def calls(self, span: str, names: frozenset[str]) -> list[_Lifted] | None:
        return _calls(_decode(span), names, allow_list=False, require_args=True)


class _Call(_WholeLines):
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        super().__init__("\"'")
        self._name = name

    def _may_start(self, c: str) -> bool:
        return c in {")", "_"} or c.isalpha()

    def calls(self, span: str, names: frozenset[str]) -> list[_Lifted] | None:
        body = span.rstrip()
        if not body.endswith(")"):
            return None  # closed by a bracket of another kind
        args = parse_keyword_arguments(body[body.index("(") + 1 : -1])
        return None if args is None else [(self._name, args)]


class _Brackets:
    """Finds where a bracketed span closes, skipping quoted strings."""

    __slots__ = ("_depth", "_escape", "_out", "_quote", "_quotes")

    def __init__(self, quotes: str, *, depth: int = 0) -> None:
        self._quotes = quotes
        self._out = _OUT_RE[quotes]
        self._depth = depth
        self._quote: str | None = None
        self._escape = False

    def advance(self, s: str, i: int) -> int:
        """Index after the bracket that closes the first one, or -1 if not seen yet."""
        n = len(s)
        while i < n:
            if self._quote is not None:
                if self._escape:
                    self._escape = False
                    i += 1
                    continue
                m = _IN_RE[self._quote].search(s, i)
                if m is None:
                    return -1
                i = m.start()
                if s[i] == "\\":
                    self._escape = True
                else:
                    self._quote = None
                i += 1
                continue
            m = self._out.search(s, i)
            if m is None:
                return -1
            i = m.start()
            c = s[i]
            i += 1
            if c in self._quotes:
                self._quote = c
            elif c in "([{":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth <= 0:
                    return i
        return -1


# parsing


def _decode(text: str) -> Any:
    try:
        return msgspec.json.decode(text.strip())
    except msgspec.DecodeError:
        return _INVALID


def _calls(
    value: Any, names: frozenset[str], *, allow_list: bool, require_args: bool
) -> list[_Lifted] | None:
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


def _call_of(obj: Any, names: frozenset[str], *, require_args: bool) -> _Lifted | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or name not in names:
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
        raw = _decode(raw) if raw.strip() else {}
    return (name, raw) if isinstance(raw, dict) else None


def parse_keyword_arguments(inner: str) -> dict[str, Any] | None:
    """`a="x", n=1, o={"k": [1]}` as a dict; None unless every argument parses."""
    args: dict[str, Any] = {}
    if not inner.strip():
        return args
    i, n = 0, len(inner)
    while True:
        m = _KEYWORD.match(inner, i)
        if m is None:
            return None
        value, i = _literal(inner, m.end())
        if value is _INVALID or m.group(1) in args:
            return None
        args[m.group(1)] = value
        sep = _SEPARATOR.match(inner, i)
        assert sep is not None  # the pattern matches the empty string
        i = sep.end()
        if i == n:
            return args
        if not sep.group(1):
            return None


def _literal(text: str, i: int) -> tuple[Any, int]:
    c = text[i : i + 1]
    if c in ("'", '"'):
        m = _STRING[c].match(text, i)
        if m is None:
            return _INVALID, i
        return _ESCAPE.sub(_unescape, m.group(1)), m.end()
    if c in ("{", "["):
        end = _Brackets('"').advance(text, i)
        return (_INVALID, i) if end < 0 else (_decode(text[i:end]), end)
    if (m := _NUMBER.match(text, i)) is not None:
        number = m.group()
        is_float = any(ch in number for ch in ".eE")
        return (float(number) if is_float else int(number)), m.end()
    if (m := _WORD.match(text, i)) is not None and m.group() in _WORDS:
        return _WORDS[m.group()], m.end()
    return _INVALID, i


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if len(code) == 5 and code[0] == "u":
        return chr(int(code[1:], 16))
    if code in _ESCAPES:
        return _ESCAPES[code]
    return code if code in "\\'\"/" else "\\" + code
