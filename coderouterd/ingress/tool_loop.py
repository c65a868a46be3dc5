"""Tool loops: an agent calling the same tool with the same input again and again (pure).

A local model stuck in a loop reads the same file or runs the same command
turn after turn; the client resends the whole conversation each time, so
the loop is in the history of the request itself. A loop is the trailing
run of identical tool calls (same name, same input, key order aside) among
the last `window` tool calls of the assistant's messages, when it is at
least `threshold` long: only the current state counts, a loop the agent
already left is none.

The history is read from its end, one message at a time, and stops at the
first call that differs: in a conversation without a loop that is the last
two assistant messages. With the message bounds ingress found
(RequestBody.bounds), messages that are not the assistant's are passed over
by a byte search (in compact JSON `"role":"assistant"` cannot occur inside
a string, whose quotes are escaped) and never decoded. Ingress keeps the
bounds of the last 100 messages: a run is counted within them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import msgspec

from coderouterd.ingress.body import RequestBody, newest_first
from coderouterd.translate.system_text import after_system

_ASSISTANT = b'"role":"assistant"'
_ASSISTANT_FIRST = b"{" + _ASSISTANT
_USER_FIRST = b'{"role":"user"'
_list = msgspec.json.Decoder(list[msgspec.Raw])


_NULL = msgspec.Raw(b"null")


class _Block(msgspec.Struct):
    type: str = ""
    name: str | None = None
    # Raw cannot be in a union with None: a missing input reads as JSON null.
    input: msgspec.Raw = _NULL


class _Function(msgspec.Struct):
    name: str | None = None
    # JSON, as a string (OpenAI's tool calls).
    arguments: str = "null"


class _ToolCall(msgspec.Struct):
    function: _Function | None = None


class _Message(msgspec.Struct):
    role: str = ""
    # Anthropic: tool_use blocks in the content; OpenAI: tool_calls beside it.
    content: list[_Block] | str | None = None
    tool_calls: list[_ToolCall] | None = None


# A tool call: its name and its input's JSON text.
_Call = tuple[str, bytes]


_message = msgspec.json.Decoder(_Message)
_any = msgspec.json.Decoder()

# Told to a model in a loop (tool_loop_action: inject), after its system prompt.
HINT = (
    "You have called the same tool with the same input several times in a row "
    "and got the same result. Repeating the call will not change it. Use the "
    "result you already have, try a different approach, or tell the user what "
    "is blocking you."
)


@dataclass(frozen=True, slots=True)
class ToolLoop:
    tool: str
    repeats: int


def detect(body: RequestBody, *, window: int, threshold: int) -> ToolLoop | None:
    """The loop the request's history ends in, if any (either dialect)."""
    last: _Call | None = None
    run = seen = 0
    for calls in _newest_first(body):
        for call in reversed(calls):
            if last is None:
                last, run = call, 1
            elif _same(call, last):
                run += 1
            else:
                return _found(last, run, threshold)
            seen += 1
            if seen >= window:
                return _found(last, run, threshold)
    return _found(last, run, threshold)


def _same(a: _Call, b: _Call) -> bool:
    # Mostly told apart by name, or by bytes; inputs are decoded only when
    # the bytes differ (the same keys in another order are the same input).
    if a[0] != b[0]:
        return False
    if a[1] == b[1]:
        return True
    try:
        return bool(_any.decode(a[1]) == _any.decode(b[1]))
    except msgspec.DecodeError:
        return False


def with_hint(fields: Mapping[str, msgspec.Raw], dialect: str) -> dict[str, msgspec.Raw]:
    """The fields with HINT after the system prompt (system_text.py)."""
    return after_system(fields, dialect, HINT)


def _found(last: _Call | None, run: int, threshold: int) -> ToolLoop | None:
    return ToolLoop(last[0], run) if last is not None and run >= threshold else None


def _newest_first(body: RequestBody) -> Iterator[list[_Call]]:
    """Each assistant message's tool calls, newest message first; the
    others are passed over."""
    for raw in newest_first(body, keep=_maybe_assistant):
        try:
            message = _message.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            continue
        if message.role != "assistant":
            continue
        calls: list[_Call] = []
        if isinstance(message.content, list):
            calls += [
                (b.name, bytes(b.input))
                for b in message.content
                if b.type == "tool_use" and b.name is not None
            ]
        for c in message.tool_calls or ():
            if c.function is not None and c.function.name is not None:
                calls.append((c.function.name, c.function.arguments.encode()))
        yield calls


def _maybe_assistant(raw: bytes, lo: int, hi: int) -> bool:
    # Clients put the role first; where one does not, the bytes are searched.
    if raw.startswith(_USER_FIRST, lo):
        return False
    return raw.startswith(_ASSISTANT_FIRST, lo) or raw.find(_ASSISTANT, lo, hi) != -1
