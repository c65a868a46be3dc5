"""`thinking` in the shape the backend's Claude model takes (pure).

A client shapes `thinking` and `output_config.effort` for the model it
names (Claude Code: `adaptive` with an effort level for Opus 4.6 and later,
`enabled` with budget_tokens for older ones), while the provider may run
another Claude generation, which refuses the other shape with a 400. The
registry's `thinking_modes` says which shape the backend's model takes:

* "budget" (Claude 3.7 to 4.5): `adaptive` goes as `enabled` with the
  budget the request's effort level gives in THINKING_BUDGETS, the table an
  OpenAI client's reasoning_effort reads too, so that one level means one
  budget in either dialect (no level: `high`, Anthropic's default). It is
  kept below max_tokens, as Anthropic requires; when no budget of at least
  1024 tokens fits, thinking goes (remove_thinking). An effort level the
  model refuses is removed after this (`effort: false`, passthrough.py).
* "adaptive" (Opus 4.7 and later): `enabled` goes as `adaptive`, with the
  effort level its budget_tokens stands for (effort_for_budget) when the
  model takes effort and the request sets none; an OpenAI client's
  reasoning_effort becomes that level as it is (translated_openai.py).

`sampling: false` removes temperature, top_p and top_k, which Opus 4.7 and
later refuse whatever thinking is. Each change is a Degradation.

A request without `thinking` costs a dictionary look-up here; one whose
`thinking` already has a shape the model takes, a search of its few bytes.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import msgspec

from coderouterd.translate.capabilities import ModelCapabilities
from coderouterd.translate.params_o2a import THINKING_BUDGETS, budget_within
from coderouterd.translate.thinking_removal import remove_thinking
from coderouterd.translate.types import Degradation, read_json

_encode = msgspec.json.Encoder().encode
_int = msgspec.json.Decoder(int)

# The `thinking` type each mode refuses, as it appears in the body's bytes.
_REFUSED = {"budget": b'"adaptive"', "adaptive": b'"enabled"'}
_SAMPLING = ("temperature", "top_p", "top_k")
SAMPLING_DROPPED = "the backend's model takes no sampling parameters"
# An OpenAI client's reasoning_effort as Anthropic's effort level (it has no
# `minimal`; Opus 4.7 and later take the others as they are).
_OPENAI_EFFORT = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}


def effort_for_budget(budget: int) -> str:
    """The effort level a thinking budget stands for. The bounds lie between
    THINKING_BUDGETS' low (2048), medium (8192) and high (24576) budgets,
    so a budget made from a level gives that level back; Claude Code's
    31999 is `high`. No budget stands for more than `high`."""
    if budget <= 4096:
        return "low"
    if budget <= 16384:
        return "medium"
    return "high"


class ClaudeShape:
    """What one backend's Claude model needs changed in a request's
    `thinking`, effort level and sampling parameters."""

    __slots__ = ("_drop_sampling", "_refused", "_takes_effort")

    def __init__(self, caps: ModelCapabilities) -> None:
        self._refused = _REFUSED.get(caps.thinking_modes or "")
        self._takes_effort = caps.effort is not False
        self._drop_sampling = caps.sampling is False

    def fit(self, fields: MutableMapping[str, msgspec.Raw]) -> list[Degradation]:
        """The raw top-level `fields` of an Anthropic client's request changed
        for the model, where they need it."""
        degraded: list[Degradation] = []
        raw = fields.get("thinking")
        if raw is not None and self._refused is not None and self._refused in bytes(raw):
            thinking = read_json(raw, "thinking")
            if isinstance(thinking, dict) and thinking.get("type") == "adaptive":
                degraded += _as_budget(fields, thinking)
            elif isinstance(thinking, dict) and thinking.get("type") == "enabled":
                degraded += _as_adaptive(fields, thinking, takes_effort=self._takes_effort)
        if self._drop_sampling:
            degraded += without_sampling(fields)
        return degraded

    def fit_translated(self, body: dict[str, Any], reasoning_effort: object) -> list[Degradation]:
        """An OpenAI client's request, translated (params_o2a asks for a
        budget), changed for the model: adaptive thinking at the client's
        reasoning_effort for a model that takes no budget."""
        degraded: list[Degradation] = []
        thinking = body.get("thinking")
        adaptive_only = self._refused == _REFUSED["adaptive"]
        if adaptive_only and isinstance(thinking, dict) and thinking.get("type") == "enabled":
            level = _OPENAI_EFFORT.get(str(reasoning_effort))
            level = level or effort_for_budget(int(thinking.get("budget_tokens") or 0))
            body["thinking"] = {"type": "adaptive"}
            said = "sent as adaptive thinking"
            if self._takes_effort:
                body["output_config"] = {**body.get("output_config", {}), "effort": level}
                said += f" at effort {level}"
            why = ": the backend's model takes no budget_tokens"
            degraded.append(Degradation("reasoning_effort", said + why))
        if self._drop_sampling:
            degraded += without_sampling(body)
        return degraded


def claude_shape(caps: ModelCapabilities) -> ClaudeShape | None:
    """The changes the model needs, or None when it takes requests as clients shape them."""
    if caps.thinking_modes not in ("budget", "adaptive") and caps.sampling is not False:
        return None
    return ClaudeShape(caps)


def without_sampling(fields: MutableMapping[str, Any]) -> list[Degradation]:
    """temperature, top_p and top_k removed from raw or decoded top-level fields."""
    return [Degradation(k, SAMPLING_DROPPED) for k in _SAMPLING if fields.pop(k, None) is not None]


def _as_budget(
    fields: MutableMapping[str, msgspec.Raw], thinking: dict[str, Any]
) -> list[Degradation]:
    config = fields.get("output_config")
    effort = read_json(config, "output_config") if config is not None else None
    level = effort.get("effort") if isinstance(effort, dict) else None
    level = level if isinstance(level, str) and level in THINKING_BUDGETS else "high"
    max_tokens = _max_tokens(fields.get("max_tokens"))
    budget = THINKING_BUDGETS[level]
    fitted = budget if max_tokens is None else budget_within(budget, max_tokens)
    if fitted is None:
        why = (
            f"dropped: the backend's model takes only a thinking budget,"
            f" and max_tokens {max_tokens} leaves no room for one"
        )
        return remove_thinking(fields, Degradation("thinking", why))
    fields["thinking"] = msgspec.Raw(
        _encode({**thinking, "type": "enabled", "budget_tokens": fitted})
    )
    said = (
        f"adaptive sent as enabled with budget_tokens {fitted} (effort {level}):"
        " the backend's model takes only a budget"
    )
    return [Degradation("thinking.type", said)]


def _as_adaptive(
    fields: MutableMapping[str, msgspec.Raw], thinking: dict[str, Any], *, takes_effort: bool
) -> list[Degradation]:
    budget = thinking.pop("budget_tokens", None)
    fields["thinking"] = msgspec.Raw(_encode({**thinking, "type": "adaptive"}))
    said = "enabled sent as adaptive: the backend's model takes no budget_tokens"
    degraded = [Degradation("thinking.type", said)]
    if not takes_effort or not isinstance(budget, int) or isinstance(budget, bool):
        return degraded
    raw = fields.get("output_config")
    config = read_json(raw, "output_config") if raw is not None else {}
    if isinstance(config, dict) and "effort" not in config:
        level = effort_for_budget(budget)
        fields["output_config"] = msgspec.Raw(_encode({**config, "effort": level}))
        degraded.append(Degradation("output_config.effort", f"{level}, for budget_tokens {budget}"))
    return degraded


def _max_tokens(raw: msgspec.Raw | None) -> int | None:
    # Not an integer: the upstream's to refuse, with its own message.
    try:
        return _int.decode(raw) if raw is not None else None
    except msgspec.DecodeError:
        return None
