"""Output filters on an Anthropic provider's answer, for an Anthropic client (pure).

Used only for providers whose output filters are on; otherwise the
passthrough forwards bytes. Text goes through the output pipeline (think
filter, then tool-call repair or markup stripping), which may split one text
block into text, thinking and tool_use blocks, so every block is re-indexed.
Blocks that are not text (thinking, tool_use, server tools, …) pass as they
came, in order; a thinking block also tells the think filter that reasoning
arrives structured (see ThinkFilter.reasoning_arrived). The pipeline is
flushed at the end of each text block, so text blocks stay separate. A
citation in a text block goes to the text block open when it arrives, or to
the next one the same upstream block opens (none: its text all became
thinking or calls, and it is dropped). When a call was lifted from the text
a turn that ended (`end_turn`, `stop_sequence`) ends with `tool_use`; any
other stop reason (`max_tokens`: the call may be cut) is kept. Frames the
filters do not touch (message_start, ping, message_stop, error, unknown
events) are forwarded as the upstream's own bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from coderouterd.routing.upstream import Out
from coderouterd.translate.anthropic_passthrough import NOT_CONTENT, AnthropicPassthrough
from coderouterd.translate.blocks import BlockWriter, Event
from coderouterd.translate.filtered import FilteredTranscoder
from coderouterd.translate.response_o2a import Blocks, OutputPipeline, ToolIds
from coderouterd.translate.types import OutputFilters, ToolNames
from coderouterd.wire.sse import encode_event

_encode = msgspec.json.Encoder().encode
_THINKING = frozenset({"thinking", "redacted_thinking"})
# Stop reasons of a turn that ended by itself: with a lifted call it ended
# for the call. None: the upstream did not say.
_TURN_ENDED = frozenset({None, "end_turn", "stop_sequence", "tool_use"})


class FilteredAnthropicStream:
    """Anthropic events in; None (forward the frame as it is) or the events to send."""

    def __init__(self, filters: OutputFilters, names: ToolNames, message_id: str) -> None:
        self._pipeline = OutputPipeline(filters, names)
        self._w = BlockWriter(ToolIds(message_id))
        self._text: set[int] = set()  # upstream indices of text blocks
        self._mapped: dict[int, int] = {}  # upstream index -> our index, other blocks
        # citations_delta events of the current text block, waiting for a text block of ours
        self._citations: list[dict[str, Any]] = []

    @property
    def repairs(self) -> int:
        return self._pipeline.repairs

    def feed(self, name: str, data: Mapping[str, Any]) -> list[Event] | None:
        index = data.get("index")
        if name == "content_block_start" and isinstance(index, int):
            self._start(index, data.get("content_block"))
        elif name == "content_block_delta" and isinstance(index, int):
            self._delta(index, data.get("delta"))
        elif name == "content_block_stop" and isinstance(index, int):
            self._end_text() if index in self._text else self._w.close()
        elif name == "message_delta":
            self._end_text()
            self._w.emit("message_delta", self._stop_reason(data))
        elif name == "message_stop":
            self._end_text()
            return self._w.take() or None
        else:
            return None
        return self._w.take()

    def _start(self, index: int, block: object) -> None:
        block = block if isinstance(block, Mapping) else {}
        if block.get("type") == "text":
            self._text.add(index)
            self._w.pieces(self._pipeline.feed(str(block.get("text") or "")))
            return
        if block.get("type") in _THINKING:
            self._w.pieces(self._pipeline.reasoning_arrived())
        self._end_text()
        self._mapped[index] = self._w.open_block(str(block.get("type")), dict(block))

    def _delta(self, index: int, delta: object) -> None:
        if not isinstance(delta, Mapping):
            return
        if index in self._text:
            if delta.get("type") == "citations_delta":
                self._citations.append(dict(delta))
            else:
                self._w.pieces(self._pipeline.feed(str(delta.get("text") or "")))
            self._cite()
        elif self._w.open is not None and self._mapped.get(index) == self._w.index:
            self._w.delta(dict(delta))

    def _cite(self) -> None:
        if self._citations and self._w.open == "text":
            for citation in self._citations:
                self._w.delta(citation)
            self._citations.clear()

    def _end_text(self) -> None:
        self._w.pieces(self._pipeline.flush())
        self._cite()
        self._citations.clear()
        self._w.close()

    def _stop_reason(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in data.items() if k != "type"}
        delta = data.get("delta")
        if self.repairs and isinstance(delta, Mapping):
            out["delta"] = _with_lifted(delta)
        return out


class FilteredAnthropicTranscoder(FilteredTranscoder):
    """AnthropicPassthrough's checks and accounting, with the filters applied."""

    final_event = "message_stop"

    def __init__(
        self,
        provider: str,
        stream: FilteredAnthropicStream,
        *,
        prompt_tokens: Callable[[], int] | None = None,
    ) -> None:
        """`prompt_tokens`: as for AnthropicPassthrough, whose accounting this is."""
        self._source: AnthropicPassthrough = AnthropicPassthrough(
            provider, prompt_tokens=prompt_tokens
        )
        self._stream: FilteredAnthropicStream = stream
        self._produced = False

    @property
    def produced(self) -> bool:
        """A content event came (upstream.Holding), sent or held by the filters."""
        return self._produced

    def feed(self, chunk: bytes) -> list[Out]:
        out: list[Out] = []
        for ev in self._source.events(chunk):
            self._produced = self._produced or ev.event not in NOT_CONTENT
            data = msgspec.json.decode(ev.data)
            events = self._stream.feed(ev.event, data) if isinstance(data, dict) else None
            if events is None:
                out.append(Out(ev.raw, ev.event not in NOT_CONTENT))
            else:
                out += [Out(encode_event(n, _encode(d)), n not in NOT_CONTENT) for n, d in events]
            if events is not None and ev.event == "message_stop":
                out.append(Out(ev.raw, True))
        return out

    def end(self) -> list[Out]:
        return self._source.end()


def filter_anthropic_message(
    message: dict[str, Any],
    *,
    filters: OutputFilters,
    names: ToolNames,
) -> tuple[dict[str, Any], int]:
    """A whole Messages response with its text blocks filtered; (message, repairs)."""
    pipeline = OutputPipeline(filters, names)
    ids = ToolIds(str(message.get("id") or "msg"))
    content: list[Any] = []
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind != "text":
            if kind in _THINKING:
                content += _built(ids, pipeline.reasoning_arrived())
            content.append(block)
            continue
        text = str(block.get("text") or "")
        pieces = pipeline.feed(text) + pipeline.flush()
        # Unchanged text keeps its block whole (citations and all); changed,
        # its citations go to its first text block, as in a stream.
        if pieces == [("text", text)]:
            content.append(block)
        else:
            content += _cited(_built(ids, pieces), block.get("citations"))
    out = {**message, "content": content}
    return (_with_lifted(out) if pipeline.repairs else out), pipeline.repairs


def _with_lifted(holder: Mapping[str, Any]) -> dict[str, Any]:
    """A message (or message_delta) that a call was lifted into (module doc)."""
    if holder.get("stop_reason") not in _TURN_ENDED:
        return dict(holder)
    return {**holder, "stop_reason": "tool_use", "stop_sequence": None}


def _cited(blocks: list[dict[str, Any]], citations: object) -> list[dict[str, Any]]:
    first = next((b for b in blocks if b.get("type") == "text"), None)
    if citations and first is not None:
        first["citations"] = citations
    return blocks


def _built(ids: ToolIds, pieces: list[Any]) -> list[dict[str, Any]]:
    blocks = Blocks(ids)
    blocks.pieces(pieces)
    return blocks.blocks
