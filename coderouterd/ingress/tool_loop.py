"""Tool loops: an agent calling the same tool with the same input again and again (pure).

A local model stuck in a loop reads the same file or runs the same command
turn after turn; the client resends the whole conversation each time, so
the loop is in the history of the request itself. A loop is the trailing
run of identical tool calls (same name, same input, key order aside, and
the same result) among the last `window` tool calls of the assistant's
messages, when it is at least `threshold` long. Only the current state
counts: the run must be the history's latest activity, the last assistant
message making the call and the request bringing its result and nothing
from the user. A loop the agent left, or that the user stepped into, is
none; and a run counts only the calls after the user's last words, beside
their results or after an answer in text (the agent doing as told). The
same call with another result is progress (Claude Code polling a
background shell whose output grows).

The history is read from its end, one message at a time, and stops at the
first call that differs: in a conversation without a loop that is the last
two assistant messages. With the message bounds ingress found
(RequestBody.bounds), messages are slices of the body: an assistant's is
told by its first bytes (clients put the role first); the others are
decoded only for the results of calls that match, and those after the last
assistant message for whether the user spoke once a run is long enough.
Ingress keeps the bounds of the last 100 messages: a run is counted within
them.

An OpenAI client may write its calls the legacy way: an assistant's
`function_call` and a `role: "function"` message with its result, neither
with an id. As translate/o2a_tool_messages.FunctionCalls pairs them, a
result answers the latest unanswered call of its name: an assistant
message's call is answered by the first result of its name among the
messages after it. (A result coming only after a later call would answer
that later call first; the earlier one counts as unanswered, which ends a
run: such a history is no loop in progress.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from coderouterd.ingress.body import RequestBody, newest_first
from coderouterd.translate.system_text import after_system

_ASSISTANT_FIRST = b'{"role":"assistant"'
_ROLE_FIRST = b'{"role":"'
# Claude Code's own notes to the model, which it puts in the user's turn.
_REMINDER = "<system-reminder>"

_NULL = msgspec.Raw(b"null")


class _Block(msgspec.Struct):
    type: str = ""
    id: str | None = None
    name: str | None = None
    # Raw cannot be in a union with None: a missing input reads as JSON null.
    input: msgspec.Raw = _NULL


class _Function(msgspec.Struct):
    name: str | None = None
    # JSON, as a string (OpenAI's tool calls).
    arguments: str = "null"


class _ToolCall(msgspec.Struct):
    id: str | None = None
    function: _Function | None = None


class _Message(msgspec.Struct):
    role: str = ""
    # Anthropic: tool_use blocks in the content; OpenAI: tool_calls beside
    # it, or the legacy function_call.
    content: list[_Block] | str | None = None
    tool_calls: list[_ToolCall] | None = None
    function_call: _Function | None = None


class _Part(msgspec.Struct):
    """A block of the user's content: a tool_result, or what the user said."""

    type: str = ""
    tool_use_id: str | None = None
    content: msgspec.Raw = _NULL
    is_error: bool | None = None
    text: str | None = None


class _Reply(msgspec.Struct):
    """A message that is not the assistant's: the user's, or (OpenAI) a
    tool's result, by call id, or a legacy function's, by name."""

    role: str = ""
    content: list[_Part] | str | None = None
    tool_call_id: str | None = None
    name: str | None = None


class _Role(msgspec.Struct):
    role: str = ""


_Raw = memoryview | msgspec.Raw


class _Call(NamedTuple):
    name: str
    input: bytes  # its JSON text
    id: str | None
    # A legacy function_call: no id, its result told by its name.
    legacy: bool = False


# A tool call's result: whether an error, and its content (a tool_result's
# as JSON text).
_Result = tuple[bool, msgspec.Raw | list[_Part] | str | None]


class _Replies(NamedTuple):
    """What the messages after an assistant message bring: results by call
    id, legacy results by name (the first of each), and whether the user
    said something of their own."""

    results: dict[str, _Result]
    spoke: bool
    functions: dict[str, _Result]


class _Turn:
    """An assistant message's tool calls, and the messages after it, read
    only when one of its calls matches the run's: most turns never are."""

    __slots__ = ("_after", "_replies", "calls")

    def __init__(self, calls: list[_Call], after: list[_Raw]) -> None:
        self.calls = calls
        self._after = after
        self._replies: _Replies | None = None

    def replies(self) -> _Replies:
        if self._replies is None:
            self._replies = _read(self._after)
        return self._replies

    def result(self, call: _Call) -> _Result | None:
        if call.legacy:
            return self.replies().functions.get(call.name)
        return None if call.id is None else self.replies().results.get(call.id)


_message = msgspec.json.Decoder(_Message)
_reply = msgspec.json.Decoder(_Reply)
_role = msgspec.json.Decoder(_Role)
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
    turns = _turns(body)
    newest = next(turns, None)
    if newest is None or not newest.calls:
        # No call, or the agent answered in text since: no loop in progress.
        return None
    head = newest.calls[-1]
    run = _run(head, newest, turns, window)
    if run < threshold:
        return None
    replies = newest.replies()
    if replies.spoke or newest.result(head) is None:
        # The user stepped in, or the request does not answer the call.
        return None
    return ToolLoop(head.name, run)


def _run(head: _Call, newest: _Turn, older: Iterator[_Turn], window: int) -> int:
    """How many of the last calls (at most `window`) are `head` with its
    result, since the user last spoke: the calls of a turn whose results
    carry the user's words, or of one before an answer in text that the user
    replied to, and those before, were the agent's before the user stepped
    in, and what it does as told is not a loop. A text-only turn that no
    words of the user's follow does not break the run. (The newest turn's
    words are detect's to weigh.)"""
    result = newest.result(head)
    run = 0
    # Text-only turns passed since the last call counted: the user's words
    # after one (an answer, then a new request) end the run there. They are
    # read only once an older call matches, as the run would end anyway.
    passed: list[_Turn] = []
    for turn in itertools.chain((newest,), older):
        for call in reversed(turn.calls):
            if run and not (_same(call, head) and turn.result(call) == result):
                return run
            if any(t.replies().spoke for t in passed):
                return run
            if turn is not newest and turn.replies().spoke:
                return run
            passed = []
            run += 1
            if run >= window:
                return run
        if not turn.calls:
            passed.append(turn)
    return run


def _same(a: _Call, b: _Call) -> bool:
    # Mostly told apart by name, or by bytes; inputs are decoded only when
    # the bytes differ (the same keys in another order are the same input).
    if a.name != b.name:
        return False
    if a.input == b.input:
        return True
    try:
        return bool(_any.decode(a.input) == _any.decode(b.input))
    except (msgspec.DecodeError, RecursionError):
        return False


def with_hint(fields: Mapping[str, msgspec.Raw], dialect: str) -> dict[str, msgspec.Raw]:
    """The fields with HINT after the system prompt (system_text.py)."""
    return after_system(fields, dialect, HINT)


def _turns(body: RequestBody) -> Iterator[_Turn]:
    """Each assistant message's tool calls, newest message first, with the
    messages that follow it (undecoded)."""
    after: list[_Raw] = []
    for raw in newest_first(body):
        if not _is_assistant(raw):
            after.append(raw)
            continue
        try:
            message = _message.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            continue
        calls: list[_Call] = []
        if isinstance(message.content, list):
            calls += [
                _Call(b.name, bytes(b.input), b.id)
                for b in message.content
                if b.type == "tool_use" and b.name is not None
            ]
        for c in message.tool_calls or ():
            if c.function is not None and c.function.name is not None:
                calls.append(_Call(c.function.name, c.function.arguments.encode(), c.id))
        legacy = message.function_call
        if legacy is not None and legacy.name is not None:
            calls.append(_Call(legacy.name, legacy.arguments.encode(), None, legacy=True))
        yield _Turn(calls, after)
        after = []


def _is_assistant(raw: _Raw) -> bool:
    head = memoryview(raw)[: len(_ASSISTANT_FIRST)].tobytes()
    if head == _ASSISTANT_FIRST:
        return True
    if head.startswith(_ROLE_FIRST):
        return False
    # A client that does not put the role first: read it.
    try:
        return _role.decode(raw).role == "assistant"
    except (msgspec.DecodeError, RecursionError):
        return False


def _read(messages: Sequence[_Raw]) -> _Replies:
    """The results the messages bring (Anthropic tool_result blocks, OpenAI
    role:tool and legacy role:function messages), and whether the user said
    anything besides. `messages` are newest first (_turns)."""
    results: dict[str, _Result] = {}
    functions: dict[str, _Result] = {}
    spoke = False
    for raw in messages:
        try:
            reply = _reply.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            continue
        if reply.role == "tool":
            if reply.tool_call_id is not None:
                results[reply.tool_call_id] = (False, reply.content)
        elif reply.role == "function":
            if reply.name is not None:
                # Read newest first: the earliest of a name is kept, the one
                # that answers the call before them.
                functions[reply.name] = (False, reply.content)
        elif reply.role == "user":
            spoke = _user(reply.content, results) or spoke
    return _Replies(results, spoke, functions)


def _user(content: list[_Part] | str | None, results: dict[str, _Result]) -> bool:
    """Whether a user message says something of the user's own; its
    tool_result blocks go into `results`."""
    if isinstance(content, str):
        return not content.startswith(_REMINDER)
    spoke = False
    for p in content or ():
        if p.type == "tool_result":
            if p.tool_use_id is not None:
                results[p.tool_use_id] = (bool(p.is_error), p.content)
        elif p.type != "text" or not (p.text or "").startswith(_REMINDER):
            spoke = True
    return spoke
