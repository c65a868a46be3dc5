"""Lifting tool calls that a model printed as text (streaming driver, pure).

Local models often write a tool call into the content and finish with
`stop`. `ToolCallRepair` finds where a candidate may start and hands the span
to the recognisers in `repair_parse`, which say what is a call. Bare objects,
fences and call syntax must start a line: prose that mentions a call
mid-sentence is left alone. `<tool_call>` tags are recognised anywhere. Text
inside other code fences (```python …) is never lifted.

Streaming: plain text is released as soon as it cannot start a candidate;
only a candidate span (and trailing whitespace, so that it can be trimmed
when a call follows) is held. A candidate that turns out not to be a call is
released verbatim. Each character is examined a bounded number of times; a
candidate longer than `max_candidate` is text however it arrives (given up
as it passes the limit while streaming, not lifted when it comes whole).
`scanned` counts the characters handed to the scanner (held text counts
again each time it is looked at) and joined into candidate spans, so tests
can check that the work grows linearly with the text.

Text before a lifted call ends without its trailing whitespace; text after
it, when text came before it in the run, starts with one separator (the
wider whitespace run around the call, else a line break), so that one
content string (OpenAI) keeps the two apart; Anthropic block writers drop
it with every text block's leading whitespace. With `strip_markup`, a
`<tool_call>` span that is not lifted goes whole when it calls only tools
the request did not offer (`offered`: offered at all, callable now or not);
of other spans and of stray tags only the tags go, never the text between
(the whitespace after a tag goes when whitespace came before it).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from coderouterd.translate.name_starts import begins_a_name, known_starts
from coderouterd.translate.repair_parse import (
    CLOSE_TAG,
    OPEN_TAG,
    BareCandidate,
    CallCandidate,
    Candidate,
    FenceCandidate,
    Lifted,
    ScanState,
    TagCandidate,
)

# A printed call holds a whole file the model writes; the scan is linear, so
# this bounds only what one candidate holds back.
DEFAULT_MAX_CANDIDATE = 1024 * 1024
_MAX_INDENT = 64
_IDENT = re.compile(r"[A-Za-z0-9_-]+")
_MID_WITH_TAGS = re.compile(r"[\n<]")


class ToolCall(msgspec.Struct, frozen=True):
    """A lifted call; its id is the writer's to give, in its client's shape."""

    name: str
    arguments: dict[str, Any]


Segment = str | ToolCall


class ToolCallRepair:
    """Feed text as it arrives; get text and lifted `ToolCall`s back in order."""

    __slots__ = (
        "_cand",
        "_cand_len",
        "_cand_parts",
        "_gap",
        "_known",
        "_max",
        "_names",
        "_offered",
        "_out",
        "_pending",
        "_repairs",
        "_run",
        "_state",
        "_strip",
        "_tags",
        "_trim_lead",
        "_wrote",
        "_ws",
        "scanned",
    )

    def __init__(
        self,
        tool_names: frozenset[str],
        *,
        strip_markup: bool = False,
        offered: frozenset[str] = frozenset(),
        max_candidate: int = DEFAULT_MAX_CANDIDATE,
    ) -> None:
        self._names = tool_names  # the tools a call may be lifted as
        self._offered = tool_names | offered
        self._known = known_starts(tool_names)
        self._strip = strip_markup
        self._tags = bool(tool_names) or strip_markup
        self._max = max_candidate
        self._repairs = 0
        self._state = ScanState.HEAD
        self._pending = ""
        self._cand: Candidate | None = None
        self._cand_parts: list[str] = []
        self._cand_len = 0
        self._ws: list[str] = []  # trailing whitespace of released text, held
        self._trim_lead = False
        self._wrote = False  # text was released in this run
        # A call was lifted after text of this run: the whitespace before it,
        # for the separator of the text that follows.
        self._gap: str | None = None
        self._out: list[Segment] = []
        self._run: list[str] = []  # text released since the last segment boundary
        self.scanned = 0

    @property
    def repairs(self) -> int:
        """How many tool calls were lifted so far."""
        return self._repairs

    @property
    def holding(self) -> bool:
        """Whether a candidate span is open: text arriving now is its data."""
        return self._cand is not None

    @property
    def holding_call(self) -> bool:
        """Whether an open span is a call's: a bare JSON object only once it
        names a tool (reasoning drafts and abandons others)."""
        cand = self._cand
        if isinstance(cand, BareCandidate):
            return cand.opens_call("".join(self._cand_parts)[:512], self._names)
        return cand is not None

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
        if self._gap is None:
            self._run.extend(self._ws)
        self._ws = []
        self._gap = None
        self._wrote = False
        self._trim_lead = False
        self._state = ScanState.HEAD
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
        self.scanned += len(s)
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
            if state is ScanState.HEAD:
                pos = self._head(s, pos, final=final)
            elif state is ScanState.MID:
                pos = self._mid(s, pos, final=final)
            elif state is ScanState.CODE_HEAD:
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
        self._state = ScanState.MID
        return pos

    def _opener(self, s: str, j: int, *, final: bool) -> tuple[Candidate, int] | bool:
        """The candidate a line opens at j and where its span goes on; True if undecided."""
        if j == len(s):
            return not final
        if s[j] == "{":
            return BareCandidate(), j + 1
        if s[j] == "`":
            k = j
            while k < len(s) and k - j < 3 and s[k] == "`":
                k += 1
            return (FenceCandidate(), k) if k - j == 3 else (k == len(s) and not final)
        return self._call_opener(s, j, final=final)

    def _call_opener(self, s: str, j: int, *, final: bool) -> tuple[Candidate, int] | bool:
        m = _IDENT.match(s, j)
        if m is None or not begins_a_name(self._known, m.group()):
            return False
        if m.end() == len(s):
            return not final
        if s[m.end()] == "(" and m.group() in self._names:
            return CallCandidate(m.group()), m.end() + 1
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
            self._state = ScanState.HEAD
            return i + 1
        self._text(s[pos:i])
        if s.startswith(OPEN_TAG, i):
            return self._begin(TagCandidate(), s, i, i + len(OPEN_TAG))
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
            self._state = ScanState.MID  # the closing fence: back to prose
            return k
        if k == n and not final:
            return self._hold(s, pos)
        self._state = ScanState.CODE_MID
        return pos

    def _code_mid(self, s: str, pos: int) -> int:
        i = s.find("\n", pos)
        if i == -1:
            self._text(s[pos:])
            return len(s)
        self._text(s[pos : i + 1])
        self._state = ScanState.CODE_HEAD
        return i + 1

    # candidates

    def _begin(self, cand: Candidate, s: str, start: int, pos: int) -> int:
        self._cand = cand
        self._cand_parts = [s[start:pos]]
        self._cand_len = pos - start
        return pos

    def _advance(self, s: str, pos: int, *, final: bool) -> int:
        cand = self._cand
        assert cand is not None
        end = cand.step(s, pos)
        stop = len(s) if end < 0 else end
        self._cand_parts.append(s[pos:stop])
        self._cand_len += stop - pos
        if end >= 0:
            self._decide(cand.complete)
        elif final:
            self._decide(cand.at_eof())
        elif self._cand_len > self._max:
            self._decide(False, over_limit=True)
        return stop

    def _decide(self, complete: bool, *, over_limit: bool = False) -> None:
        cand = self._cand
        assert cand is not None
        span = "".join(self._cand_parts)
        self.scanned += len(span)
        # Past the limit a span is text, whether or not it was seen whole.
        whole = complete and self._cand_len <= self._max
        self._cand = None
        self._cand_parts = []
        self._cand_len = 0
        calls = cand.calls(span, self._names) if whole else None
        if calls:
            self._lift(calls)
            self._state = ScanState.HEAD if cand.ends_line else ScanState.MID
            return
        if isinstance(cand, TagCandidate) and self._strip:
            self._drop_markup()
            if not (whole and self._unoffered(cand.calls(span, None))):
                inner = span[len(OPEN_TAG) : len(span) - len(CLOSE_TAG) if complete else None]
                # Tags the span held in its strings are stray once it is text.
                self._text(inner.replace(OPEN_TAG, "").replace(CLOSE_TAG, ""))
                if complete:
                    self._drop_markup()
        else:
            self._text(span)
        code = cand.code_state(over_limit=over_limit)
        if code is not None:
            self._state = code
        else:
            self._state = ScanState.HEAD if span.endswith("\n") else ScanState.MID

    def _unoffered(self, calls: list[Lifted] | None) -> bool:
        """Whether a span calls only tools the request did not offer."""
        return bool(calls) and all(name not in self._offered for name, _ in calls or ())

    def _lift(self, calls: list[Lifted]) -> None:
        if self._wrote:
            self._gap = _wider(self._gap or "", "".join(self._ws))
        self._ws = []
        self._close_run()
        for name, arguments in calls:
            self._repairs += 1
            self._out.append(ToolCall(name, arguments))
        # After text, the whitespace that follows is held for the separator.
        self._trim_lead = not self._wrote

    def _drop_markup(self) -> None:
        if self._ws or not self._wrote:
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
        trailing = t[len(body) :]
        if self._gap is not None:
            text = body.lstrip()
            lead = "".join(self._ws) + body[: len(body) - len(text)]
            self._run.append(_wider(self._gap, lead) or "\n")
            self._gap = None
            body = text
        else:
            self._run.extend(self._ws)
        self._run.append(body)
        self._wrote = True
        self._ws = [trailing] if trailing else []


def _wider(a: str, b: str) -> str:
    """The whitespace run with more line breaks, else the longer (a on a tie)."""
    return max(a, b, key=lambda w: (w.count("\n"), len(w)))
