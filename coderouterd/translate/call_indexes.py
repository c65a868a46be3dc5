"""Which of an OpenAI-compatible upstream's tool calls a streamed fragment
belongs to (pure).

OpenAI numbers each call of an answer by `index` and sends its `id` and
name in the first fragment only. Backends differ: Ollama sends every call
whole at index 0, Gemini sends no index at all. A new `id` at an index
already used, or a name without an id after arguments that are already a
whole JSON object, starts the next call; any other fragment continues the
latest call at its index (or the latest call, without one). The
translating stream (stream_o2a) and the filtered OpenAI stream
(filtered_openai) tell calls apart by these rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

# Arguments longer than this are not checked for being whole JSON: a call
# that long is not followed by its name sent again.
WHOLE_MAX = 64 * 1024


def whole_object(args: list[str], args_len: int) -> bool:
    """Whether arguments streamed so far (`args_len` characters) are one JSON object."""
    if not args or args_len > WHOLE_MAX:
        return False
    try:
        return isinstance(msgspec.json.decode("".join(args)), dict)
    except (msgspec.DecodeError, RecursionError):  # too deep to tell: not whole
        return False


@dataclass(slots=True)
class _Upstream:
    """One of the upstream's calls: our index for it, and what tells the next one apart."""

    ours: int
    id: object = None
    named: bool = False
    args: list[str] = field(default_factory=list)  # while short (WHOLE_MAX)
    args_len: int = 0

    def ended_by(self, call_id: object, named: bool, indexed: bool) -> bool:
        """Whether a fragment that would continue this call starts the next one."""
        if call_id is not None:
            return self.id is not None and call_id != self.id
        if not indexed or not named or not self.named:
            return named and self.named
        return whole_object(self.args, self.args_len)


class CallIndexes:
    """One choice's upstream calls, each given an index of ours by
    `take_index` when it starts (lifted calls take theirs from it too)."""

    __slots__ = ("_by_index", "_latest", "_take_index")

    def __init__(self, take_index: Callable[[], int]) -> None:
        self._take_index = take_index
        self._by_index: dict[int, _Upstream] = {}  # the latest call at an upstream index
        self._latest: _Upstream | None = None

    def renumbered(self, calls: list[Any]) -> list[Any]:
        """The upstream's fragments with our indices; `calls` itself when they all match."""
        out = calls
        for i, call in enumerate(calls):
            if not isinstance(call, Mapping):
                continue
            index = call.get("index")
            index = index if type(index) is int else None
            call_id = call.get("id") or None
            function = call.get("function")
            function = function if isinstance(function, Mapping) else {}
            named = bool(function.get("name"))
            target = self._by_index.get(index) if index is not None else self._latest
            if target is None or (
                (call_id or named) and target.ended_by(call_id, named, index is not None)
            ):
                target = self._latest = _Upstream(self._take_index())
                if index is not None:
                    self._by_index[index] = target
            if call_id or named:
                target.id = target.id or call_id
                target.named = target.named or named
            arguments = function.get("arguments")
            if isinstance(arguments, str) and target.args_len <= WHOLE_MAX:
                target.args.append(arguments)
                target.args_len += len(arguments)
            if index != target.ours:
                out = list(calls) if out is calls else out
                out[i] = {**call, "index": target.ours}
        return out
