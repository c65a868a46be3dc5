"""JSON-ish literals in model text (pure, no I/O).

The lowest layer of tool-call repair (`repair_parse` builds candidates on
it): where a bracketed value ends, with its strings skipped; JSON decoding
that says when it fails; and the keyword arguments of call syntax,
`a="x", n=1, o={"k": [1]}`, whose strings take JSON's escapes (a `\\uXXXX`
surrogate pair is one character; a lone surrogate is no text, so no literal)
and Python's quotes and words (`'x'`, `True`, `None`).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_OUT_RE = {'"': re.compile(r'[\[\]{}()"]'), "\"'": re.compile(r"[\[\]{}()\"']")}
_IN_RE = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]")}
# Outside a string JSON holds brackets, quotes, separators, numbers and
# true/false/null; the first character of anything else ends a JSON search.
_JSON_OUT = re.compile(r"[^\s,:0-9.+\-eEtrufalsn]")
_JSON_IN = {'"': re.compile(r'["\\\n]')}
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
# A surrogate pair is one escape: each half alone is no character.
_ESCAPE = re.compile(
    r"\\(u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)", re.S
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0"}
INVALID = object()  # what no literal decodes to


class Brackets:
    """Finds where a bracketed span closes, skipping quoted strings.

    With `json`, what JSON cannot hold (a word or a `<` outside a string, a
    line break inside one) ends the search: `broken` is set and its index
    returned, so prose is not held as if it were a value still open.
    """

    __slots__ = ("_depth", "_escape", "_in", "_marks", "_out", "_quote", "_quotes", "broken")

    def __init__(self, quotes: str, *, depth: int = 0, json: bool = False) -> None:
        self._quotes = quotes
        self._out = _JSON_OUT if json else _OUT_RE[quotes]
        self._marks = '"[]{}' if json else quotes + "()[]{}"
        self._in = _JSON_IN if json else _IN_RE
        self._depth = depth
        self._quote: str | None = None
        self._escape = False
        self.broken = False

    def advance(self, s: str, i: int) -> int:
        """Index after the bracket that closes the first one, or -1 if not seen yet."""
        n = len(s)
        while i < n:
            if self._quote is not None:
                i = self._in_string(s, i)
                if i < 0 or self.broken:
                    return i
                continue
            m = self._out.search(s, i)
            if m is None:
                return -1
            i = m.start()
            c = s[i]
            if c not in self._marks:
                self.broken = True
                return i
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

    def _in_string(self, s: str, i: int) -> int:
        """Index after the string's next character that matters, or -1 if not seen yet."""
        if self._escape:
            self._escape = False
            return i + 1
        assert self._quote is not None
        m = self._in[self._quote].search(s, i)
        if m is None:
            return -1
        i = m.start()
        if s[i] == "\n":
            self.broken = True
            return i
        if s[i] == "\\":
            self._escape = True
        else:
            self._quote = None
        return i + 1


def decode(text: str) -> Any:
    """The JSON value the text holds, or INVALID (also when it nests deeper
    than the decoder can follow: a model can be made to print that)."""
    try:
        return msgspec.json.decode(text.strip())
    except (msgspec.DecodeError, RecursionError):
        return INVALID


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
        if value is INVALID or m.group(1) in args:
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
            return INVALID, i
        value = _ESCAPE.sub(_unescape, m.group(1))
        # A lone surrogate is no text: the answer could not be encoded.
        return (INVALID, i) if _SURROGATE.search(value) else (value, m.end())
    if c in ("{", "["):
        end = Brackets('"').advance(text, i)
        return (INVALID, i) if end < 0 else (decode(text[i:end]), end)
    if (m := _NUMBER.match(text, i)) is not None:
        number = m.group()
        is_float = any(ch in number for ch in ".eE")
        return (float(number) if is_float else int(number)), m.end()
    if (m := _WORD.match(text, i)) is not None and m.group() in _WORDS:
        return _WORDS[m.group()], m.end()
    return INVALID, i


def _unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if len(code) == 11:
        high, low = int(code[1:5], 16), int(code[7:], 16)
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    if len(code) == 5 and code[0] == "u":
        return chr(int(code[1:], 16))
    if code in _ESCAPES:
        return _ESCAPES[code]
    return code if code in "\\'\"/" else "\\" + code
