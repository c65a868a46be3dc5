"""The JSON value a document cut short begins with (pure).

A unary response recorded up to replay.max_record_kb is such a document:
a replay compares what it holds up to the cut. Every value complete before
the cut is kept, and the string the cut falls in as far as it goes; a key
without its value, and a number or literal the cut may have shortened, are
left out. The containers still open at the cut end there.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

_T = TypeVar("_T")

_SPACE = re.compile(r"[ \t\n\r]*")
# A string's characters up to its closing quote, escapes included; it stops
# early at a backslash with nothing after it.
_CHARS = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_NUMBER = re.compile(r"[-+0-9.eE]+")
# At the end of a cut string: the high half of a surrogate pair whose low half
# was cut off, and an escape the cut shortened (`\u20`); after an even run of
# backslashes, so that the backslash starts an escape.
_CUT_ESCAPE = re.compile(
    r"(?<!\\)((?:\\\\)*)(?:\\u[dD][89abAB][0-9a-fA-F]{2})?(?:\\u[0-9a-fA-F]{0,3})?\Z"
)
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
_STR = msgspec.json.Decoder(str)


class _NotJSONError(Exception):
    """The text is not the beginning of a JSON document."""


class _CutError(Exception):
    """The document ends here."""


def decode_prefix(data: bytes) -> Any:
    """The value `data` begins, or None when it begins none (nor is JSON)."""
    # Valid UTF-8 up to the cut, which may split a character: its bytes go.
    text = data.decode("utf-8", "ignore")
    try:
        return _Reader(text).read()
    except _NotJSONError:
        return None


class _Reader:
    """Reads values into the containers still open, which are already in
    place in their parents: at the cut, the root holds all there is."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.root: Any = None
        # Open containers, innermost last, each with the key its next value takes.
        self.open: list[tuple[dict[str, Any] | list[Any], list[str]]] = []
        # The innermost container was just opened: no comma before its first member.
        self.first = False

    def read(self) -> Any:
        try:
            self._value()
            while self.open:
                self._step()
        except _CutError:
            return self.root
        if self._next() is not None:
            raise _NotJSONError
        return self.root

    def _next(self) -> str | None:
        """The next character that is not white space, or None at the end."""
        self.at = _end(_SPACE, self.text, self.at)
        return self.text[self.at] if self.at < len(self.text) else None

    def _peek(self) -> str:
        char = self._next()
        if char is None:
            raise _CutError
        return char

    def _step(self) -> None:
        """The end of the innermost container, or its next member (after a
        comma unless it is the first)."""
        container, _ = self.open[-1]
        char = self._peek()
        first, self.first = self.first, False
        if char == ("}" if isinstance(container, dict) else "]"):
            self.at += 1
            self.open.pop()
            return
        if not first:
            if char != ",":
                raise _NotJSONError
            self.at += 1
        if isinstance(container, dict):
            if self._peek() != '"':
                raise _NotJSONError
            key = self._string(cut_ok=False)
            if self._peek() != ":":
                raise _NotJSONError
            self.at += 1
            self.open[-1][1].append(key)
        self._value()

    def _value(self) -> None:
        """The value here, placed; a container is opened and filled by `_step`,
        so nesting takes no recursion."""
        char = self._peek()
        if char in "{[":
            self.at += 1
            container: dict[str, Any] | list[Any] = {} if char == "{" else []
            self._place(container)
            self.open.append((container, []))
            self.first = True
        elif char == '"':
            self._place(self._string(cut_ok=True))
        else:
            self._place(self._scalar())

    def _place(self, value: Any) -> None:
        if not self.open:
            self.root = value
            return
        container, keys = self.open[-1]
        if isinstance(container, dict):
            container[keys.pop()] = value
        else:
            container.append(value)

    def _string(self, *, cut_ok: bool) -> str:
        """The string starting at the quote here; one the cut falls in is
        placed as far as it goes (`cut_ok`), and then the document ends."""
        start = self.at
        end = _end(_CHARS, self.text, start + 1)
        if end < len(self.text) and self.text[end] == '"':
            self.at = end + 1
            return _decoded(_STR, self.text[start : end + 1])
        if cut_ok:
            chars = _CUT_ESCAPE.sub(r"\1", self.text[start:end], count=1)
            # A control character or bad escape raises here, as it would whole.
            self._place(_decoded(_STR, chars + '"'))
        raise _CutError

    def _scalar(self) -> Any:
        rest = self.text[self.at : self.at + 5]
        for word, value in _LITERALS.items():
            if rest.startswith(word):
                self.at += len(word)
                return value
            if len(rest) < len(word) and word.startswith(rest):
                raise _CutError
        match = _NUMBER.match(self.text, self.at)
        if match is None:
            raise _NotJSONError
        if match.end() == len(self.text):
            raise _CutError  # the cut may have taken digits off
        self.at = match.end()
        return _decoded(_ANY, match.group(0))


def _end(pattern: re.Pattern[str], text: str, at: int) -> int:
    """Where `pattern`, which matches the empty string too, ends from `at`."""
    match = pattern.match(text, at)
    return match.end() if match else at


def _decoded(decoder: msgspec.json.Decoder[_T], token: str) -> _T:
    try:
        return decoder.decode(token)
    except msgspec.DecodeError as exc:
        raise _NotJSONError from exc
