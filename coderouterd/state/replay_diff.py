"""How a replayed response differs from the recorded one (pure).

`coderouterd replay --diff` assembles both (state/assemble) and prints
`render_diff(diff(...))`.
"""

from __future__ import annotations

import difflib
from typing import Any

import msgspec

from coderouterd.state.assemble import Assembled


class Change(msgspec.Struct, frozen=True):
    field: str
    before: Any
    after: Any


_TEXT_FIELDS = ("text", "thinking")
# A cache count left out is none read from or written to the cache.
_CACHE_USAGE = ("cache_read_input_tokens", "cache_creation_input_tokens")
_COMPARED_USAGE = ("input_tokens", "output_tokens", *_CACHE_USAGE)


def diff(
    recorded: Assembled,
    new: Assembled,
    *,
    recorded_ms: float | None,
    new_ms: float | None,
    partial: bool = False,
) -> list[Change]:
    """What differs, in a fixed order: content first, then accounting.

    Tool calls are matched by position. Latency is compared in whole
    milliseconds, and only when both sides were measured.

    `partial`: the recording was cut (replay.max_record_kb), so only what it
    holds is compared: text and thinking that the new answer does not begin
    with, its tool calls (the last one's by name only, which the new name
    need only begin with: a body cut short may cut its name too, and its
    input); the error still is, but not the stop reason and usage, which
    come last.
    """
    changes = [
        Change(name, before, after)
        for name in _TEXT_FIELDS
        if not _same_text(before := getattr(recorded, name), after := getattr(new, name), partial)
    ]
    changes += _tool_call_changes(recorded, new, partial)
    if not partial and recorded.stop_reason != new.stop_reason:
        changes.append(Change("stop_reason", recorded.stop_reason, new.stop_reason))
    # Compared even past a cut: a recording long enough to be cut was no
    # error envelope, and an answer that is one now is what a replay is for.
    if recorded.error != new.error:
        changes.append(Change("error", recorded.error, new.error))
    if not partial:
        changes += _usage_changes(recorded, new)
    if recorded_ms is not None and new_ms is not None and round(recorded_ms) != round(new_ms):
        changes.append(Change("latency_ms", round(recorded_ms), round(new_ms)))
    return changes


def _same_text(recorded: str, new: str, partial: bool) -> bool:
    return new.startswith(recorded) if partial else new == recorded


def _tool_call_changes(recorded: Assembled, new: Assembled, partial: bool) -> list[Change]:
    changes: list[Change] = []
    known = len(recorded.tool_calls)
    for i in range(known if partial else max(known, len(new.tool_calls))):
        before = recorded.tool_calls[i] if i < known else None
        after = new.tool_calls[i] if i < len(new.tool_calls) else None
        cut = partial and i == known - 1
        for part in ("name",) if cut else ("name", "input"):
            old_value = getattr(before, part, None)
            new_value = getattr(after, part, None)
            if old_value != new_value and not (cut and _begins(new_value, old_value)):
                changes.append(Change(f"tool_calls[{i}].{part}", old_value, new_value))
    return changes


def _begins(new: object, recorded: object) -> bool:
    return isinstance(new, str) and isinstance(recorded, str) and new.startswith(recorded)


def _usage_changes(recorded: Assembled, new: Assembled) -> list[Change]:
    changes = []
    for key in _COMPARED_USAGE:
        unset = 0 if key in _CACHE_USAGE else None
        before, after = recorded.usage.get(key, unset), new.usage.get(key, unset)
        if before != after:
            changes.append(Change(f"usage.{key}", before, after))
    return changes


def nothing_compared(recorded: Assembled, *, partial: bool) -> bool:
    """Whether a cut recording holds none of the answer to compare: cut
    before it began, or unreadable. `diff` then finds no change in the
    answer, which must not read as "no differences"."""
    return partial and not (
        recorded.text or recorded.thinking or recorded.tool_calls or recorded.error
    )


_PARTIAL_NOTE = (
    "the recorded response was cut at replay.max_record_kb: compared up to the cut "
    "(stop reason and usage not compared)"
)
_NOTHING_NOTE = (
    "the recorded response was cut at replay.max_record_kb, and holds none of the answer "
    "before the cut: nothing of it compared"
)


def render_diff(changes: list[Change], *, partial: bool = False, nothing: bool = False) -> str:
    """`nothing`: see `nothing_compared`."""
    shown = "\n".join(_render(change, partial) for change in changes)
    if nothing:
        return f"{_NOTHING_NOTE}\n{shown}" if shown else _NOTHING_NOTE
    shown = shown or "no differences"
    return f"{_PARTIAL_NOTE}\n{shown}" if partial else shown


def _render(change: Change, partial: bool) -> str:
    before, after = _shown(change.before), _shown(change.after)
    if change.field in _TEXT_FIELDS or "\n" in before or "\n" in after:
        lines = difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=f"recorded {change.field}{' (partial)' if partial else ''}",
            tofile=f"replayed {change.field}",
            lineterm="",
        )
        if rendered := "\n".join(lines):
            return rendered
        # Only line endings differ, which a line diff cannot show.
        return f"{change.field}: {change.before!r} -> {change.after!r}"
    return f"{change.field}: {before} -> {after}"


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        # Sorted and indented, so a tool input differing in one key diffs as
        # one line.
        text = msgspec.json.format(msgspec.json.encode(value, order="sorted"), indent=2)
        return text.decode()
    return str(value)
