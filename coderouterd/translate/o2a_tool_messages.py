"""An OpenAI client's tool calls and results as Anthropic `tool_use` and
`tool_result` blocks (pure), for request_o2a: an assistant message's
`tool_calls` and the `role: "tool"` messages answering them, and the legacy
form of both, an assistant's `function_call` and the `role: "function"`
message answering it (older clients and LangChain agents still send them).

A legacy call and its result carry no id, where Anthropic pairs a call and
its result by one: both get `function_call_<n>`, `n` the index of the
assistant message in the request, which the same history gives again on
the next turn (its prompt stays cached). A result answers the latest call
of its `name` not answered yet; one that answers none gets an id of its own,
`function_result_<n>`, and is mended as any result without its call
(tool_pairs).

Anthropic refuses a request whose `tool_use` ids repeat, where OpenAI
clients keep whatever ids their backend gave, and backends that number calls
per answer (`call_0`, Kimi's `functions.Read:0`) give the same id again on a
later turn. ToolIds keeps the first call of an id as it is and gives each
repeat `<id>_<n>`, the id's n-th use (or the next n that no other id of the
request holds), and the results that follow it the same id. The same history
gives the same ids again, so its prompt stays cached.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from coderouterd.errors import NESTED_TOO_DEEP, InvalidRequestError
from coderouterd.translate.cache_o2a import CacheMarks
from coderouterd.translate.o2a_parts import content_blocks, parts
from coderouterd.translate.types import Notes

_ARGUMENTS_KEPT_RAW = 'arguments that are no JSON object sent as {"_raw": "<the arguments>"}'
_NOT_TOOL_ID = re.compile(r"[^A-Za-z0-9_-]")
# A renamed id is no longer than this, or than the id it renames.
_ID_LENGTH = 64


def anthropic_tool_id(call_id: str) -> str:
    """`call_id` as Anthropic takes a tool id (`^[a-zA-Z0-9_-]+$`): as it is
    when it already fits; else its other characters made `_`, plus a digest
    of the whole id, so that ids differing only there stay apart (Kimi's
    `functions.Read:0` and `functions.Read.0`) and a call and its result,
    translated apart, still match."""
    if not _NOT_TOOL_ID.search(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:8]
    return f"{_NOT_TOOL_ID.sub('_', call_id)}_{digest}"


class ToolIds:
    """The tool ids of one request's history as Anthropic takes them: each
    call's id unique, each result naming the id its call got. A result
    answers the call of its id in the latest assistant message (the first
    one not answered yet, when that message repeats an id), else the latest
    call of its id, else none (tool_pairs mends it)."""

    def __init__(self, messages: object) -> None:
        # Every id the request names, so that no new one takes another's.
        self._taken = {anthropic_tool_id(i) for i in _named_ids(messages)}
        self._uses: dict[str, int] = {}  # an id as written -> calls so far
        self._latest: dict[str, str] = {}  # an id as written -> its latest call's id
        # An id as written -> the ids of the latest message's calls not answered yet.
        self._waiting: dict[str, list[str]] = {}

    def message(self) -> None:
        """An assistant message starts: results answer its calls from now on."""
        self._waiting = {}

    def call(self, call_id: str) -> str:
        base = anthropic_tool_id(call_id)
        n = self._uses[base] = self._uses.get(base, 0) + 1
        tool_id = base if n == 1 else self._fresh(base, n)
        self._latest[call_id] = tool_id
        self._waiting.setdefault(call_id, []).append(tool_id)
        return tool_id

    def result(self, call_id: str) -> str:
        if waiting := self._waiting.get(call_id):
            return waiting.pop(0)
        return self._latest.get(call_id) or anthropic_tool_id(call_id)

    def _fresh(self, base: str, n: int) -> str:
        while True:
            suffix = f"_{n}"
            tool_id = base[: max(len(base), _ID_LENGTH) - len(suffix)] + suffix
            if tool_id not in self._taken:
                self._taken.add(tool_id)
                return tool_id
            n += 1


def _named_ids(messages: object) -> Iterator[str]:
    """The call and result ids of the messages, read leniently (the
    translation reports what is malformed)."""
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        if isinstance(result_id := message.get("tool_call_id"), str):
            yield result_id
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, Mapping) and isinstance(call_id := call.get("id"), str):
                yield call_id


def tool_use(call: object, path: str, notes: Notes, ids: ToolIds) -> dict[str, Any]:
    """A `tool_calls` item as a tool_use block."""
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        raise InvalidRequestError("must be an object with a 'function'", field=path)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.id")
    return _use(ids.call(call_id), call["function"], f"{path}.function", notes)


def tool_message_result(
    message: Mapping[str, Any], path: str, notes: Notes, marks: CacheMarks, ids: ToolIds
) -> dict[str, Any]:
    """A `role: "tool"` message as a tool_result block."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.tool_call_id")
    return _result(message, ids.result(call_id), path, notes, marks)


class FunctionCalls:
    """The legacy calls of one request, each waiting for its result."""

    def __init__(self) -> None:
        self._unanswered: dict[str, list[str]] = {}  # name -> ids, the latest last

    def call(self, function_call: object, index: int, notes: Notes) -> dict[str, Any]:
        """The `function_call` of the assistant message `messages[index]`."""
        block = _use(
            f"function_call_{index}", function_call, f"messages[{index}].function_call", notes
        )
        self._unanswered.setdefault(block["name"], []).append(block["id"])
        return block

    def result(
        self, message: Mapping[str, Any], index: int, notes: Notes, marks: CacheMarks
    ) -> dict[str, Any]:
        """The `role: "function"` message `messages[index]`."""
        path = f"messages[{index}]"
        name = message.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("must be a non-empty string", field=f"{path}.name")
        waiting = self._unanswered.get(name)
        tool_id = waiting.pop() if waiting else f"function_result_{index}"
        return _result(message, tool_id, path, notes, marks)


def _use(tool_id: str, function: object, path: str, notes: Notes) -> dict[str, Any]:
    if not isinstance(function, Mapping):
        raise InvalidRequestError("must be an object", field=path)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("must be a non-empty string", field=f"{path}.name")
    arguments = _arguments(function.get("arguments"), f"{path}.arguments", notes)
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


def _arguments(raw: object, where: str, notes: Notes) -> dict[str, Any]:
    """A call's arguments as Anthropic's `input` object. Arguments that are
    no JSON object (a call cut at max_tokens) are kept as `{"_raw": …}`, as
    response_o2a keeps them the other way: the conversation goes on."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise InvalidRequestError("must be a JSON string", field=where)
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    except RecursionError as exc:
        raise InvalidRequestError(NESTED_TOO_DEEP, field=where) from exc
    if not isinstance(value, dict):
        notes.add("tool_calls.arguments", _ARGUMENTS_KEPT_RAW)
        return {"_raw": raw}
    return value


def _result(
    message: Mapping[str, Any], tool_id: str, path: str, notes: Notes, marks: CacheMarks
) -> dict[str, Any]:
    """A tool's answer as a tool_result block: a string as it is, content
    parts as text and image blocks (a screenshot tool's image with them)."""
    raw = message.get("content")
    content: str | list[dict[str, Any]]
    if raw is None or isinstance(raw, str):
        content = raw or ""
    else:
        content = content_blocks(parts(raw, f"{path}.content"), f"{path}.content", notes, marks)
    block = {"type": "tool_result", "tool_use_id": tool_id}
    return marks.copy(message, {**block, "content": content or ""})
