"""Streaming `<think>…</think>` handling for model text (pure).

Local reasoning models (Qwen3, DeepSeek-R1 distills, QwQ) write their
reasoning into the content between `<think>` and `</think>`. `ThinkFilter`
splits a stream of content into ("text", …) and ("thinking", …) segments as
the chunks arrive:

* a tag split across chunks (`<thi` + `nk>`) is still recognised: at most
  `len("</think>") - 1` characters that could begin a tag are held back, and
  released the moment they cannot;
* in "strip" and "thinking" modes a stray `</think>` outside a think block is
  dropped, a `<think>` inside one is kept as thinking text, and whitespace
  right after either tag (and at the very start of a run) is dropped, so the
  empty `<think>\\n\\n</think>` a non-thinking turn prints leaves nothing;
* in "off" mode everything is text, tags included;
* a tag outside a think block may be data, not markup: a model that prints
  its tool calls as text writes a `<think>` into a call's arguments when the
  code it writes handles reasoning tags. Before acting on such a tag the
  filter hands the segments released so far to `gate` (when given), which
  says whether the tag lies inside a tool call the caller holds; such a tag
  stays text. Between tags the gate costs nothing.
* a tag in the answer's code is data too: a model asked how to strip
  reasoning writes `re.sub(r"<think>.*?</think>", …)` in a ```python block
  or names `<think>` in an inline code span. `_CodeSpans` follows the text
  outside think blocks (fenced blocks of three or more backticks opened and
  closed at the start of a line, inline spans closed by a run of as many
  backticks, or by the end of their line, since an unmatched backtick is
  text), and a tag inside either stays text; the gate is not asked.
  Reasoning is not followed: a `</think>` always ends a think block.

Chat templates that put `<think>` into the prompt make the model emit only
the closing tag. With `assume_open_at_start=True` the start of the run is
*undecided*: it is held until the first tag decides it. A `</think>` with no
`<think>` before it makes everything held thinking, wherever it lies; a
`<think>` makes it text, unless the held text, read as text, leaves the tag
in code: then it is held as data and decides nothing, since reasoning names
the tag in backticks (`_held_code` reads the held text so). After such a
`<think>`, a `</think>` that the held text leaves in code is data too (an
answer's `re.sub(r"<think>.*?</think>", …)`); the end of the run makes the
start text (the model did not think). A tag
that would lie inside a tool call if the held text were text (a `</think>`
in the source of a file that a model that did not think writes) decides
nothing: it is the call's data. `probe` (when given) makes a scanner of
candidate calls, the caller's tool-call repair, which reads the held text
and the tag as text and says whether a call is still open after the tag;
so a reasoning that merely mentions `<tool_call>`, or drafts a whole call,
still ends at its `</think>`. Holding is unavoidable here (nothing is known
until the closing tag), so it is bounded: past `undecided_limit` characters
the held text is taken for reasoning (a template that opens the block makes
the model reason first) and released as thinking; what follows streams as
thinking until a `</think>`, and with none it stays thinking (reasoning cut
short, as at max_tokens). The caller turns this on
only for models whose template opens the block, and `reasoning_arrived`
turns it off again as soon as the server shows that it extracts the
reasoning itself (`reasoning_content`): then the text cannot start inside a
think block.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Literal, Protocol

from coderouterd.translate.types import ThinkMode

SegmentKind = Literal["text", "thinking"]
ThinkSegment = tuple[SegmentKind, str]
# Takes the segments released so far; says whether a tag arriving now is data.
TagGate = Callable[[list[ThinkSegment]], bool]


class CandidateProbe(Protocol):
    """Reads text as the caller's tool-call repair would (module doc)."""

    def feed(self, text: str) -> Sequence[object]: ...

    @property
    def holding_call(self) -> bool: ...


OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
DEFAULT_UNDECIDED_LIMIT = 64 * 1024
_CODE_MARK = re.compile(r"[`\n]")


class _CodeSpans:
    """Whether the answer's text, fed as it is released, stands in code
    (module doc). A run of backticks is counted across pieces; its end is the
    next other character (a tag's `<` included)."""

    __slots__ = ("_fence", "_inline", "_line_start", "_run", "_run_at_start")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._fence = 0  # the length of the run that opened the fenced block
        self._inline = 0  # the length of the run that opened the inline span
        self._line_start = True  # nothing but spaces so far on this line
        self._run = 0
        self._run_at_start = False

    def new_line(self) -> None:
        """Text after a think block starts as a line of its own."""
        self._end_run()
        self._inline = 0
        self._line_start = True

    @property
    def in_code(self) -> bool:
        self._end_run()
        return bool(self._fence or self._inline)

    def feed(self, t: str) -> None:
        pos = 0
        for m in _CODE_MARK.finditer(t):
            i = m.start()
            self._other(t[pos:i])
            if t[i] == "`":
                if not self._run:
                    self._run_at_start = self._line_start
                self._run += 1
            else:
                self._end_run()
                self._inline = 0
                self._line_start = True
            pos = i + 1
        self._other(t[pos:])

    def _other(self, t: str) -> None:
        if t:
            self._end_run()
            if self._line_start and t.strip(" \t"):
                self._line_start = False

    def _end_run(self) -> None:
        n, self._run = self._run, 0
        if not n:
            return
        self._line_start = False
        if self._fence:
            if self._run_at_start and n >= self._fence:
                self._fence = 0
        elif self._inline:
            if n == self._inline:
                self._inline = 0
        elif self._run_at_start and n >= 3:
            self._fence = n
        else:
            self._inline = n


class _State(Enum):
    OUTSIDE = "outside"
    INSIDE = "inside"
    UNDECIDED = "undecided"


class ThinkFilter:
    """Feed content text as it arrives; get ordered text/thinking segments back."""

    __slots__ = (
        "_code",
        "_gate",
        "_held",
        "_held_code",
        "_held_code_read",
        "_held_code_tag",
        "_held_len",
        "_limit",
        "_mode",
        "_new_probe",
        "_out",
        "_pending",
        "_probe",
        "_probe_called",
        "_probed",
        "_start_state",
        "_state",
        "_trim_lead",
    )

    def __init__(
        self,
        mode: ThinkMode,
        *,
        assume_open_at_start: bool = False,
        undecided_limit: int = DEFAULT_UNDECIDED_LIMIT,
        gate: TagGate | None = None,
        probe: Callable[[], CandidateProbe] | None = None,
    ) -> None:
        self._mode: ThinkMode = mode
        self._gate = gate
        self._new_probe = probe
        self._probe: CandidateProbe | None = None  # of the undecided start
        self._probed = 0  # pieces of `_held` it has read
        self._probe_called = False  # whether it found a whole call in them
        self._limit = undecided_limit
        self._start_state = (
            _State.UNDECIDED if assume_open_at_start and mode != "off" else _State.OUTSIDE
        )
        self._state = self._start_state
        self._pending = ""
        self._held: list[str] = []
        self._held_len = 0
        self._held_code = _CodeSpans()  # the held text read as text
        self._held_code_read = 0  # pieces of `_held` it has read
        self._held_code_tag = False  # whether a `<think>` in code was held
        self._trim_lead = mode != "off"
        self._code = _CodeSpans()
        self._out: list[ThinkSegment] = []

    def feed(self, text: str) -> list[ThinkSegment]:
        if self._mode == "off":
            return [("text", text)] if text else []
        s = self._pending + text if self._pending else text
        self._pending = ""
        self._scan(s, final=False)
        return self._take()

    def flush(self, *, end_of_run: bool = True) -> list[ThinkSegment]:
        """Release everything held.

        At the end of a run (`end_of_run`) an open think block closes, and the
        filter can be fed again: the next run starts as a new response would
        (undecided when `assume_open_at_start` was given, its leading
        whitespace dropped). Within a run (a tool call's fragments arrived
        between two pieces of text) the text goes on as it was: inside a
        think block still, its spaces kept.
        """
        if self._mode == "off":
            return []
        s, self._pending = self._pending, ""
        self._scan(s, final=True)
        if self._state is _State.UNDECIDED:
            self._resolve(_State.OUTSIDE)
        if end_of_run:
            self._state = self._start_state
            self._trim_lead = True
            self._code.reset()
        return self._take()

    def reasoning_arrived(self) -> list[ThinkSegment]:
        """The server delivers reasoning apart from the text: an undecided start
        is text, in this run and in later ones."""
        self._start_state = _State.OUTSIDE
        if self._state is _State.UNDECIDED:
            self._resolve(_State.OUTSIDE)
        return self._take()

    def _take(self) -> list[ThinkSegment]:
        """The segments of this call, neighbours of the same kind joined once."""
        out: list[ThinkSegment] = []
        parts: list[str] = []
        for kind, t in self._out:
            if out and out[-1][0] != kind:
                out[-1] = (out[-1][0], "".join(parts))
                parts = []
            if not parts:
                out.append((kind, ""))
            parts.append(t)
        if out:
            out[-1] = (out[-1][0], "".join(parts))
        self._out = []
        return out

    def _scan(self, s: str, *, final: bool) -> None:
        start = pos = 0
        while (i := s.find("<", pos)) != -1:
            if s.startswith(OPEN_TAG, i):
                tag = OPEN_TAG
            elif s.startswith(CLOSE_TAG, i):
                tag = CLOSE_TAG
            else:
                rest = s[i:]
                if not final and len(rest) < len(CLOSE_TAG) and _could_be_tag(rest):
                    self._emit(s[start:i])
                    self._pending = rest
                    return
                pos = i + 1
                continue
            self._emit(s[start:i])
            self._on_tag(tag)
            start = pos = i + len(tag)
        self._emit(s[start:])

    def _on_tag(self, tag: str) -> None:
        state = self._state
        if state is _State.OUTSIDE and self._is_data():
            self._emit(tag)
            return
        if state is _State.UNDECIDED and self._in_held_call(tag):
            self._hold_data(tag)
            return
        if tag == OPEN_TAG:
            if state is _State.INSIDE:
                self._emit(tag)
                return
            if state is _State.UNDECIDED:
                if self._in_held_code():
                    self._held_code_tag = True
                    self._hold_data(tag)
                    return
                self._resolve(_State.OUTSIDE)
            self._state = _State.INSIDE
        elif state is _State.INSIDE:
            self._state = _State.OUTSIDE
            self._code.new_line()
        elif state is _State.UNDECIDED:
            if self._held_code_tag and self._in_held_code():
                self._hold_data(tag)
                return
            self._resolve(_State.INSIDE)
            self._state = _State.OUTSIDE
        else:
            return  # a stray closing tag: dropped
        self._trim_lead = True

    def _is_data(self) -> bool:
        """Whether a tag outside a think block is text: in the answer's code,
        or (the gate says) in a tool call."""
        if self._code.in_code:
            return True
        return self._gate is not None and self._gate(self._take())

    def _in_held_call(self, tag: str) -> bool:
        """Whether the tag, were the held text text, lies inside a tool call."""
        if self._new_probe is None:
            return False
        if self._probe is None:
            self._probe = self._new_probe()
        segments = self._probe.feed("".join(self._held[self._probed :]) + tag)
        self._probed = len(self._held)
        self._probe_called |= any(not isinstance(seg, str) for seg in segments)
        return self._probe.holding_call

    def _in_held_code(self) -> bool:
        """Whether a tag arriving now, were the held text text, lies in code."""
        self._held_code.feed("".join(self._held[self._held_code_read :]))
        self._held_code_read = len(self._held)
        return self._held_code.in_code

    def _hold_data(self, tag: str) -> None:
        """Hold a tag that decides nothing as the undecided start's text."""
        self._emit(tag)
        self._probed = len(self._held)  # the probe, if any, has read the tag

    def _resolve(self, as_state: _State) -> None:
        """Release the undecided start of the run as thinking or as text."""
        held = "".join(self._held)
        self._held = []
        self._held_len = 0
        self._probe = None
        self._probed = 0
        self._probe_called = False
        self._held_code.reset()
        self._held_code_read = 0
        self._held_code_tag = False
        self._state = as_state
        self._emit(held)

    def _emit(self, t: str) -> None:
        if not t:
            return
        if self._state is _State.UNDECIDED:
            self._held.append(t)
            self._held_len += len(t)
            if self._held_len > self._limit:
                # A call in it, whole or still open (a large file written),
                # was printed by a model that did not think: text, to lift.
                in_call = self._in_held_call("") or self._probe_called
                self._resolve(_State.OUTSIDE if in_call else _State.INSIDE)
            return
        if self._state is _State.OUTSIDE:
            # Whitespace trimmed away still ends lines.
            self._code.feed(t)
        if self._trim_lead:
            t = t.lstrip()
            if not t:
                return
            self._trim_lead = False
        if self._state is _State.INSIDE:
            if self._mode == "strip":
                return
            kind: SegmentKind = "thinking"
        else:
            kind = "text"
        self._out.append((kind, t))


def _could_be_tag(rest: str) -> bool:
    return OPEN_TAG.startswith(rest) or CLOSE_TAG.startswith(rest)
