"""What an Anthropic-dialect request loses before it reaches an Anthropic upstream (pure).

The body stays bytes unless something has to go; only the top-level fields
that change are decoded and encoded again.

* Unsigned thinking, for a backend that checks signatures (Claude; the
  registry's `signed_thinking`). Thinking that a local model produced (from
  <think> text, reasoning_content, or a local server's own Anthropic API)
  carries an empty signature, or none; Anthropic rejects it with a 400.
  Such blocks are removed, and an assistant message left with no content at
  all is removed with them (an empty `content` is a 400 too; Anthropic
  joins the user turns around it). A backend that checks no signatures (a
  local server: Ollama reads them back as its model's reasoning) keeps them.
* `thinking`, when the history held unsigned thinking and the assistant
  message whose tool calls the request's trailing tool results answer (a
  tool loop in progress) does not start with signed thinking once it is
  gone (it began with an unsigned block, or Claude answered an earlier step
  of the loop with thinking off for that reason): with thinking on,
  Anthropic requires that message to start with signed thinking (a 400
  otherwise; its own advice is to turn thinking off), so that request goes
  without thinking; the `clear_thinking` edits of `context_management`,
  which need it on, go too.
* `thinking` `enabled`, for a backend that checks signatures, when the
  assistant message of the tool loop in progress starts with no thinking at
  all (a model that does not reason, earlier in the chain, made the call):
  Anthropic refuses it just the same. With `adaptive` thinking Claude itself
  may make a step without thinking, so nothing is changed.
* `thinking` for a backend whose registry rule says `thinking: false`, and
  when a clamped max_tokens leaves no room for its budget (passthrough.py);
  the same edits go with it, wherever it is removed (thinking_removal).
* cache_control markers for a backend whose rule says `cache_control:
  false`: on system blocks, content blocks (tool_result contents included),
  tools and the top level.
* `output_config.effort` for a backend whose rule says `effort: false`
  (`output_config` goes with it when it held nothing else).
* `role: system` messages inside `messages` (newer Claude Code sends them)
  for a backend whose rule says `system_messages: false`: their text blocks
  are appended to the top-level `system`, in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import msgspec

from coderouterd.translate.thinking_removal import remove_thinking
from coderouterd.translate.types import Degradation, read_json

_encode = msgspec.json.Encoder().encode

_THINKING = b'"thinking"'
_CACHE_CONTROL = b'"cache_control"'
_SYSTEM = b'"system"'
# `"thinking"` as a key with a string value; then a signature after its text.
_TEXT_KEY = re.compile(rb'\s*:\s*"')
_SIGNED_AFTER = re.compile(rb'\s*,\s*"signature"\s*:\s*"[^"]')
_ASSISTANT = b'"assistant"'
# A role key just before its value: JSON structure, not text in a string.
_ROLE_KEY = re.compile(rb'"role"\s*:\s*\Z')

UNSIGNED_DROPPED = Degradation(
    "content.thinking",
    "unsigned thinking from another provider is not sent to an Anthropic upstream",
)
TURN_UNTHOUGHT = Degradation(
    "thinking",
    "off for this request: the tool call being answered came with thinking from a provider"
    " that cannot sign it",
)
CALL_UNTHOUGHT = Degradation(
    "thinking",
    "off for this request: the tool call being answered came without thinking (a model that"
    " does not reason made it), which Anthropic refuses with thinking enabled",
)
CACHE_CONTROL_DROPPED = Degradation(
    "cache_control", "the backend does not accept prompt caching markers"
)
EFFORT_DROPPED = Degradation("output_config.effort", "the backend does not accept an effort level")
SYSTEM_FOLDED = Degradation(
    "messages.system", "system messages moved into the top-level system for this backend"
)


def may_hold_unsigned_thinking(raw: bytes) -> bool:
    """Whether a history may hold a thinking block without a valid signature.

    Cheap, and allowed to say yes wrongly (the decode that follows decides).
    A history without thinking costs one search for `"thinking"`. Otherwise
    a signed thinking block writes `"thinking"` twice, as its type and as
    the key of its text, and that text is followed by a non-empty
    `"signature"` (the order Anthropic answers in, which clients send back).
    Any `"thinking"` not accounted for so (a block with an empty, null or no
    signature, the word in a tool input, another key order) says yes; a
    `"signature"` elsewhere, in a tool input say, stands for no block.
    """
    if _THINKING not in raw:
        return False
    return raw.count(_THINKING) != 2 * _signed_texts(raw)


def _signed_texts(raw: bytes) -> int:
    """How many `"thinking": "…"` texts have a non-empty `"signature"` right after."""
    n = 0
    at = raw.find(_THINKING)
    while at >= 0:
        end = at + len(_THINKING)
        key = _TEXT_KEY.match(raw, end)
        if key is not None:
            end = _string_end(raw, key.end())
            n += _SIGNED_AFTER.match(raw, end) is not None
        at = raw.find(_THINKING, end)
    return n


def _string_end(raw: bytes, i: int) -> int:
    """The index after the closing quote of the JSON string whose text starts at `i`."""
    while (q := raw.find(b'"', i)) >= 0:
        k = q
        while k > i and raw[k - 1] == 0x5C:  # backslashes: an odd run escapes the quote
            k -= 1
        if (q - k) % 2 == 0:
            return q + 1
        i = q + 1
    return len(raw)


class HistoryCheck:
    """Whether one request's history holds unsigned thinking: found out at most
    once per request, however many Anthropic providers it is tried on.

    A history continuing one already found clean (the same messages, then
    more) is searched only from `clean_upto`, the comma after the last
    message already known: a thinking block lies whole inside one message.
    """

    __slots__ = ("clean_upto", "messages", "unsigned")

    def __init__(
        self, messages: msgspec.Raw, *, clean_upto: int = 0, unsigned: bool | None = None
    ) -> None:
        self.messages = messages
        self.clean_upto = clean_upto
        # None until known; then whether unsigned blocks are there.
        self.unsigned = unsigned

    def may_hold_unsigned(self) -> bool:
        if self.unsigned is not None:
            return self.unsigned
        if self.clean_upto:
            after = memoryview(self.messages)[self.clean_upto + 1 :]
            return may_hold_unsigned_thinking(b"[" + after)
        return may_hold_unsigned_thinking(bytes(self.messages))


def without_unsigned_thinking(
    messages: msgspec.Raw, check: HistoryCheck | None = None
) -> msgspec.Raw | None:
    """The history without unsigned thinking blocks, or None when it has none.

    `check`, when it is of these very messages, answers the cheap question
    and remembers the answer.
    """
    if check is None or check.messages is not messages:
        check = HistoryCheck(messages)
    if not check.may_hold_unsigned():
        check.unsigned = False
        return None
    cleaned = without_blocks(messages, _is_unsigned_thinking)
    check.unsigned = cleaned is not None
    return cleaned


def without_blocks(messages: msgspec.Raw, drop: Callable[[object], bool]) -> msgspec.Raw | None:
    """The history without the content blocks `drop` says go, or None when
    none does. A message left with nothing goes too: an empty `content` is a
    400 at Anthropic, which joins the turns around it."""
    decoded = read_json(messages, "messages")
    if not isinstance(decoded, list):
        return None
    kept: list[Any] = []
    changed = False
    for message in decoded:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            full = [b for b in content if not drop(b)]
            if len(full) != len(content):
                changed = True
                if not full:
                    continue
                message["content"] = full
        kept.append(message)
    return msgspec.Raw(_encode(kept)) if changed else None


def loop_in_progress(messages: Sequence[Any]) -> list[Any] | None:
    """The content of the assistant message whose tool calls the history's
    trailing tool results answer, if it ends in such a loop (system messages
    among them, which newer Claude Code sends, do not end it)."""
    i, answered = len(messages), False
    while i > 0 and (_answers_tools(messages[i - 1]) or _is_system(messages[i - 1])):
        answered = answered or _answers_tools(messages[i - 1])
        i -= 1
    if not answered or i == 0:
        return None
    message = messages[i - 1]
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return None
    content = message.get("content")
    return content if isinstance(content, list) else None


def starts_thinking(content: Sequence[Any]) -> bool:
    return (
        bool(content) and isinstance(content[0], dict) and content[0].get("type") in _THINKING_TYPES
    )


def loop_lost_thinking(messages: msgspec.Raw) -> bool:
    """Whether, in a history that held unsigned thinking, the assistant
    message of the tool loop in progress does not start with signed thinking
    once that is gone: with thinking on, Anthropic requires it to. It began
    with unsigned thinking, or it came after such a message in the same loop
    (Claude answered an earlier step with thinking off, for that reason)."""
    decoded = read_json(messages, "messages")
    content = loop_in_progress(decoded) if isinstance(decoded, list) else None
    if not content:
        return False
    rest = [b for b in content if not _is_unsigned_thinking(b)]
    return bool(rest) and not starts_thinking(rest)


def loop_started_unthought(messages: msgspec.Raw) -> bool:
    """Whether the assistant message of the tool loop in progress starts
    with no thinking at all: a model that does not reason (a local one
    earlier in the chain) made the call. With thinking `enabled` Anthropic
    requires that message to start with thinking, as Claude's own calls do.

    Only the history's tail is decoded: from the last assistant message
    (found by its bytes) to the end, where the loop is; when that cannot be
    told so, the whole history.
    """
    raw = bytes(messages)
    at = raw.rfind(_ASSISTANT)
    while at > 0 and not _ROLE_KEY.search(raw, max(0, at - 24), at):
        at = raw.rfind(_ASSISTANT, 0, at)
    opened = raw.rfind(b"{", 0, at) if at > 0 else -1
    tail = None
    if opened > 0:
        try:
            tail = msgspec.json.decode(b"[" + raw[opened:])
        except (msgspec.DecodeError, RecursionError):
            tail = None
    if not (isinstance(tail, list) and tail and _is_assistant(tail[0])):
        tail = read_json(messages, "messages")  # its role is not the first key
    content = loop_in_progress(tail) if isinstance(tail, list) else None
    return content is not None and len(content) > 0 and not starts_thinking(content)


def without_thinking(
    fields: MutableMapping[str, msgspec.Raw], why: Degradation = TURN_UNTHOUGHT
) -> list[Degradation]:
    """Turns thinking off for this request (see the module docstring), with
    the edits that need it (thinking_removal)."""
    if not _thinking_on(fields.get("thinking")):
        return []
    return remove_thinking(fields, why)


_THINKING_TYPES = frozenset({"thinking", "redacted_thinking"})


def _is_assistant(message: object) -> bool:
    return isinstance(message, dict) and message.get("role") == "assistant"


def thinking_enabled(raw: msgspec.Raw | None) -> bool:
    """Whether `thinking` is `{type: enabled}`: Claude then thinks at every
    step of a tool loop (with `adaptive` it may not, so a step without
    thinking is no reason to turn it off)."""
    value = read_json(raw, "thinking") if raw is not None else None
    return isinstance(value, dict) and value.get("type") == "enabled"


def _thinking_on(raw: msgspec.Raw | None) -> bool:
    value = read_json(raw, "thinking") if raw is not None else None
    return isinstance(value, dict) and value.get("type") != "disabled"


def _is_system(message: object) -> bool:
    return isinstance(message, dict) and message.get("role") == "system"


def _answers_tools(message: object) -> bool:
    # Claude Code appends text (system reminders) to its tool results.
    content = message.get("content") if isinstance(message, dict) else None
    return (
        isinstance(message, dict)
        and message.get("role") == "user"
        and isinstance(content, list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    )


def _is_unsigned_thinking(block: object) -> bool:
    return (
        isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")
    )


def strip_cache_control(fields: MutableMapping[str, msgspec.Raw]) -> bool:
    """Removes every cache_control marker from the request; whether there was one."""
    found = fields.pop("cache_control", None) is not None
    for key in ("system", "messages", "tools"):
        raw = fields.get(key)
        if raw is None or _CACHE_CONTROL not in bytes(raw):
            continue
        value = read_json(raw, key)
        if _strip(value, nested=key == "messages"):
            fields[key] = msgspec.Raw(_encode(value))
            found = True
    return found


def _strip(items: object, *, nested: bool) -> bool:
    """Drops cache_control from each item (messages: from each content block)."""
    found = False
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if nested:
            found = _strip(item.get("content"), nested=False) or found
            continue
        found = item.pop("cache_control", None) is not None or found
        if item.get("type") == "tool_result":
            found = _strip(item.get("content"), nested=False) or found
    return found


def without_effort(fields: MutableMapping[str, msgspec.Raw]) -> bool:
    """Removes `output_config.effort` (and an `output_config` left empty); whether there was one."""
    raw = fields.get("output_config")
    if raw is None:
        return False
    config = read_json(raw, "output_config")
    if not isinstance(config, dict) or "effort" not in config:
        return False
    del config["effort"]
    if config:
        fields["output_config"] = msgspec.Raw(_encode(config))
    else:
        del fields["output_config"]
    return True


def fold_system_messages(fields: MutableMapping[str, msgspec.Raw]) -> bool:
    """Moves `role: system` messages into the top-level system; whether there were any."""
    raw = fields.get("messages")
    if raw is None or _SYSTEM not in bytes(raw):
        return False
    messages = read_json(raw, "messages")
    if not isinstance(messages, list):
        return False
    kept = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
    if len(kept) == len(messages):
        return False
    system = _text_blocks(read_json(fields["system"], "system") if "system" in fields else None)
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "system":
            system += _text_blocks(message.get("content"))
    fields["system"] = msgspec.Raw(_encode(system))
    fields["messages"] = msgspec.Raw(_encode(kept))
    return True


def _text_blocks(content: object) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return []
