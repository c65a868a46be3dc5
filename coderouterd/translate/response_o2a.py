"""An OpenAI chat.completion as an Anthropic message (pure).

Also the pieces the stream translator shares with it: the finish_reason
mapping, usage, tool-use ids and the output pipeline (think filter, then
tool-call repair or markup stripping; a think tag inside a call the repair
holds, or in the answer's code, is data, not reasoning).

Decisions:

* Thinking taken from `reasoning_content` / `reasoning` or from `<think>`
  text is a block `{"type": "thinking", "thinking": …, "signature": ""}`.
  The empty signature marks it as unsigned: the engine must never send such
  a block to an Anthropic upstream (it would be rejected as altered).
* Tool-call arguments are parsed as JSON; an empty string is `{}`; what is
  not a JSON object, or nests too deep to read, is `{"_raw": "<the string>"}`
  so the call still reaches the client and the tool reports the bad input.
* A text block never starts with whitespace and a whitespace-only text block
  is dropped (Anthropic rejects those when the client sends them back).
* Every tool_use id is `toolu_<message id>_<n>`, whatever the upstream
  named the call: backends that number calls per answer (`call_0`, Kimi's
  `functions.Bash:0`) give a new call the id of one already in the
  client's history, and Anthropic refuses a conversation whose tool_use ids
  repeat (the message id holds the request id, unique across answers).
* A `length` finish is `max_tokens` and a `content_filter` finish
  `refusal` even with a call in the message (the answer was cut: a client
  must not run the call); a `stop` finish on one of the
  request's stop sequences, which vLLM names in the choice's `stop_reason`
  and SGLang in its `matched_stop`, is `stop_sequence` with that string.
* Usage is always complete. Without upstream usage, input is the caller's
  estimate and output is a quarter of the characters the model produced
  (content, refusal, reasoning, tool names and arguments), and it is marked
  estimated.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import partial
from typing import Any, Literal

import msgspec

from coderouterd.translate.estimate import estimate_text_tokens
from coderouterd.translate.filters import ThinkFilter
from coderouterd.translate.markers import StopMarkers
from coderouterd.translate.repair import ToolCall, ToolCallRepair
from coderouterd.translate.types import OutputFilters, ToolNames
from coderouterd.wire.stop import FINISH_TO_STOP
from coderouterd.wire.usage import openai_counts

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")

Piece = tuple[Literal["text", "thinking"], str] | ToolCall


def stop_reason_of(finish_reason: object, *, tool_used: bool) -> str:
    """OpenAI finish_reason as an Anthropic stop_reason (the set is open).
    A finish that says the answer was cut (`length`: `max_tokens`,
    `content_filter`: `refusal`) is kept with a call in the message, which
    a client must not run; otherwise `tool_use` exactly when the answer
    holds a tool_use block, whatever the upstream said (a `tool_calls`
    finish with no call is a turn that ended, and a call lifted out of text
    ends the turn for it)."""
    stop = FINISH_TO_STOP.get(finish_reason) if isinstance(finish_reason, str) else None
    if stop in (None, "end_turn", "tool_use"):
        return "tool_use" if tool_used else "end_turn"
    return stop


def matched_stop_of(choice: Mapping[str, Any]) -> object:
    """The stop string a server says the choice ended on: vLLM's
    `stop_reason`, SGLang's `matched_stop` (a token id there is an int)."""
    matched = choice.get("stop_reason")
    return matched if matched is not None else choice.get("matched_stop")


def stop_of(
    finish_reason: object,
    matched: object,
    *,
    tool_used: bool,
    stop_sequences: Collection[str],
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) of an answer; see the module doc."""
    if (
        finish_reason == "stop"
        and not tool_used
        and isinstance(matched, str)
        and matched in stop_sequences
    ):
        return "stop_sequence", matched
    return stop_reason_of(finish_reason, tool_used=tool_used), None


def anthropic_usage(
    upstream: object, *, estimated_input_tokens: int, output_chars: int
) -> tuple[dict[str, int], bool]:
    """A complete Anthropic usage object and whether any of it is estimated.
    An estimated input is the whole prompt: no cache count beside it."""
    counts = openai_counts(upstream)
    prompt, completion = counts.input_tokens, counts.output_tokens
    known = prompt is not None
    return {
        "input_tokens": estimated_input_tokens if prompt is None else prompt,
        "output_tokens": estimate_text_tokens(output_chars) if completion is None else completion,
        "cache_creation_input_tokens": (counts.cache_creation_input_tokens or 0) if known else 0,
        "cache_read_input_tokens": (counts.cache_read_input_tokens or 0) if known else 0,
    }, not known or completion is None


class ToolIds:
    """Tool-use ids of one message: `toolu_<message id>_<n>` (module doc)."""

    __slots__ = ("_base", "_n")

    def __init__(self, message_id: str) -> None:
        self._base = _NOT_ID.sub("_", message_id.removeprefix("msg_"))
        self._n = 0

    def assign(self) -> str:
        self._n += 1
        return f"toolu_{self._base}_{self._n}"


class OutputPipeline:
    """Model text through the stop-marker filter, the think filter, then
    tool-call repair or stripping.

    Thinking segments end the current text run of the repair, so text held
    back by it comes out before the thinking. A think tag inside a tool-call
    candidate (a `<tool_call>` span, a JSON object) is data of the call: at
    a tag outside a think block the think filter hands the repair the text
    before it and asks (`_gate`); an undecided start is read by a repair of
    its own (`probe`). Calls are lifted as `names.callable`; markup
    stripping keeps calls to `names.offered` too.
    """

    __slots__ = ("_early", "_markers", "_repair", "_think")

    def __init__(self, filters: OutputFilters, names: ToolNames) -> None:
        self._markers = StopMarkers() if filters.strip_stop_markers else None
        lifted = names.callable if filters.repair_tool_calls else frozenset()
        strip = filters.strip_tool_markup
        # A callable tool is an offered one too, whether or not calls are lifted.
        offered = names.callable | names.offered
        self._repair = (
            ToolCallRepair(lifted, strip_markup=strip, offered=offered) if lifted or strip else None
        )
        # What the gate routed while the think filter was still scanning.
        self._early: list[Piece] = []
        self._think = (
            ThinkFilter(
                filters.think,
                assume_open_at_start=filters.assume_think_open,
                gate=self._gate if self._repair is not None else None,
                probe=partial(ToolCallRepair, lifted, strip_markup=strip) if self._repair else None,
            )
            if filters.think != "off"
            else None
        )

    @property
    def repairs(self) -> int:
        return self._repair.repairs if self._repair is not None else 0

    def feed(self, text: str) -> list[Piece]:
        if self._markers is not None:
            text = self._markers.feed(text)
        if self._think is None:
            return self._route([("text", text)])
        return self._thought(self._think.feed(text))

    def reasoning_arrived(self) -> list[Piece]:
        """The server delivers reasoning apart from the text: see ThinkFilter.reasoning_arrived."""
        return self._route(self._think.reasoning_arrived()) if self._think is not None else []

    def reasoning(self, text: str) -> list[Piece]:
        """Reasoning the server delivered apart from the text (`reasoning_content`),
        as a thinking piece after any text held so far."""
        return self.reasoning_arrived() + self._route([("thinking", text)])

    def flush(self, *, end_of_run: bool = True) -> list[Piece]:
        """Everything held, in order; see ThinkFilter.flush for `end_of_run`."""
        out = self.feed_held()
        if self._think is not None:
            out += self._thought(self._think.flush(end_of_run=end_of_run))
        if self._repair is not None:
            out += self._repaired(self._repair.flush())
        return out

    def feed_held(self) -> list[Piece]:
        """Text the marker filter still holds, through the rest of the pipeline."""
        held = self._markers.flush() if self._markers is not None else ""
        if not held:
            return []
        if self._think is None:
            return self._route([("text", held)])
        return self._thought(self._think.feed(held))

    def _gate(self, segments: list[tuple[Literal["text", "thinking"], str]]) -> bool:
        """The think filter's gate: the text before a tag goes to the repair
        first, which then says whether the tag falls inside a candidate."""
        self._early += self._route(segments)
        return self._repair is not None and self._repair.holding

    def _thought(self, segments: list[tuple[Literal["text", "thinking"], str]]) -> list[Piece]:
        """The pieces of one think-filter call: those its gate routed, then the rest."""
        early, self._early = self._early, []
        return early + self._route(segments) if early else self._route(segments)

    def _route(self, segments: list[tuple[Literal["text", "thinking"], str]]) -> list[Piece]:
        out: list[Piece] = []
        for kind, text in segments:
            if self._repair is None:
                out.append((kind, text))
            elif kind == "thinking":
                out += self._repaired(self._repair.flush())
                out.append((kind, text))
            else:
                out += self._repaired(self._repair.feed(text))
        return out

    @staticmethod
    def _repaired(segments: list[str | ToolCall]) -> list[Piece]:
        return [("text", seg) if isinstance(seg, str) else seg for seg in segments]


def parse_arguments(raw: object) -> dict[str, Any]:
    """Tool-call arguments as an object; see the module doc for the fallbacks."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def arguments_json(raw: str) -> str:
    """Arguments streamed as text, as the JSON of the object parse_arguments
    makes of them: the text as it came when it is a JSON object; "" when
    there are none."""
    if not raw.strip():
        return ""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        value = None
    return raw if isinstance(value, dict) else msgspec.json.encode({"_raw": raw}).decode()


def first_choice(choices: object) -> Mapping[str, Any]:
    """The choice with index 0 (or the first one); other choices are ignored."""
    if not isinstance(choices, list):
        return {}
    maps = [c for c in choices if isinstance(c, Mapping)]
    for choice in maps:
        if choice.get("index", 0) == 0:
            return choice
    return maps[0] if maps else {}


def text_of(content: object) -> str:
    """Message content as text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def reasoning_of(source: Mapping[str, Any]) -> str:
    for key in ("reasoning_content", "reasoning"):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


class Blocks:
    """Content blocks built with the same rules the stream translator follows."""

    def __init__(self, ids: ToolIds) -> None:
        self.blocks: list[dict[str, Any]] = []
        self._ids = ids

    def text(self, text: str) -> None:
        last = self.blocks[-1] if self.blocks else None
        if last is not None and last["type"] == "text":
            last["text"] += text
        elif text.strip():
            self.blocks.append({"type": "text", "text": text.lstrip()})

    def thinking(self, text: str) -> None:
        last = self.blocks[-1] if self.blocks else None
        if last is not None and last["type"] == "thinking":
            last["thinking"] += text
        elif text:
            self.blocks.append({"type": "thinking", "thinking": text, "signature": ""})

    def tool_use(self, name: str, arguments: dict[str, Any]) -> None:
        tool_id = self._ids.assign()
        self.blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": arguments})

    def pieces(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if isinstance(piece, ToolCall):
                self.tool_use(piece.name, piece.arguments)
            elif piece[0] == "thinking":
                self.thinking(piece[1])
            else:
                self.text(piece[1])


def openai_to_anthropic_response(
    resp: Mapping[str, Any],
    *,
    message_id: str,
    model: str,
    filters: OutputFilters,
    names: ToolNames,
    estimated_input_tokens: int,
    stop_sequences: Collection[str] = (),
) -> tuple[dict[str, Any], int, bool]:
    """(Anthropic message, tool calls repaired, usage estimated)."""
    choice = first_choice(resp.get("choices"))
    message = choice.get("message")
    if not isinstance(message, Mapping):
        message = {}
    blocks = Blocks(ToolIds(message_id))
    pipeline = OutputPipeline(filters, names)
    reasoning = reasoning_of(message)
    if reasoning:
        blocks.pieces(pipeline.reasoning(reasoning))
    # A refusal (`content` null, the words in `refusal`) is the answer's
    # text, as the stream translator reads it.
    content = text_of(message.get("content")) + text_of(message.get("refusal"))
    blocks.pieces(pipeline.feed(content) + pipeline.flush())
    chars = len(reasoning) + len(content) + _add_tool_calls(blocks, message)
    usage, estimated = anthropic_usage(
        resp.get("usage"), estimated_input_tokens=estimated_input_tokens, output_chars=chars
    )
    has_tool = any(b["type"] == "tool_use" for b in blocks.blocks)
    stop_reason, stop_sequence = stop_of(
        choice.get("finish_reason"),
        matched_stop_of(choice),
        tool_used=has_tool,
        stop_sequences=stop_sequences,
    )
    return (
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks.blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        },
        pipeline.repairs,
        estimated,
    )


def _add_tool_calls(blocks: Blocks, message: Mapping[str, Any]) -> int:
    """Adds message.tool_calls (or a legacy function_call); returns their characters."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        legacy = message.get("function_call")
        calls = [{"function": legacy}] if isinstance(legacy, Mapping) else []
    chars = 0
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        name = function.get("name")
        if not isinstance(name, str) or not name:
            continue
        raw = function.get("arguments")
        chars += len(name) + (len(raw) if isinstance(raw, str) else 0)
        blocks.tool_use(name, parse_arguments(raw))
    return chars
