"""The parameters of an Anthropic request in OpenAI terms: limits, sampling, reasoning (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import THINKING_UNSUPPORTED, ModelCapabilities
from coderouterd.translate.params_o2a import fit_budget
from coderouterd.translate.types import Degradation, Notes, number_or_none

_EFFORT_LIMITS = ((4096, "low"), (16384, "medium"))
# Anthropic's `output_config.effort` levels as OpenAI reasoning efforts.
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
_OUTPUT_CONFIG_DROPPED = "Anthropic output_config has no OpenAI equivalent"


def max_tokens(raw: object, limit: int | None, notes: Notes) -> int | None:
    if raw is None:
        return limit
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise InvalidRequestError("must be a positive integer", field="max_tokens")
    if limit is not None and raw > limit:
        notes.add("max_tokens", f"clamped from {raw} to the provider's limit of {limit}")
        return limit
    return raw


def sampling(body: Mapping[str, Any], notes: Notes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        if (value := number_or_none(body, key)) is not None:
            out[key] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequestError("must be a list of strings", field="stop_sequences")
        if stop:
            out["stop"] = list(stop)
    if body.get("top_k") is not None:
        notes.add("top_k", "top_k is not part of the OpenAI API")
    return out


def reasoning(
    raw: object, caps: ModelCapabilities, notes: Notes, output_config: object = None
) -> dict[str, Any]:
    """The backend's reasoning parameter for `thinking`. An effort is the one
    `output_config.effort` asks for (Claude Code's `/effort`; `max` is
    `high`) when it names one, else the one a budget comes to (adaptive:
    medium); OpenRouter's `reasoning` object takes a budget as it is.
    Anything else of `output_config`, and an effort that no reasoning
    parameter took, is noted as dropped."""
    asked = _effort_asked(output_config)
    out = _reasoning(raw, caps, notes, asked)
    used = asked is not None and ("reasoning_effort" in out or "effort" in out.get("reasoning", {}))
    if isinstance(output_config, Mapping) and (
        set(output_config) - {"effort"} or ("effort" in output_config and not used)
    ):
        notes.add("output_config", _OUTPUT_CONFIG_DROPPED)
    return out


def _effort_asked(output_config: object) -> str | None:
    effort = output_config.get("effort") if isinstance(output_config, Mapping) else None
    return _EFFORTS.get(effort) if isinstance(effort, str) else None


def _reasoning(
    raw: object, caps: ModelCapabilities, notes: Notes, asked: str | None
) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequestError("must be an object", field="thinking")
    kind, budget = raw.get("type"), raw.get("budget_tokens")
    if kind == "enabled" and (not isinstance(budget, int) or isinstance(budget, bool)):
        raise InvalidRequestError("must be an integer", field="thinking.budget_tokens")
    if kind not in ("enabled", "adaptive", "disabled"):
        raise InvalidRequestError(f"unknown thinking type {kind!r}", field="thinking.type")
    param = caps.reasoning_param
    if kind == "disabled":
        return {"think": False} if param == "think" else {}
    if caps.thinking is False or param is None:
        unable = "the backend has no way to ask this model for reasoning"
        notes.add("thinking", THINKING_UNSUPPORTED if caps.thinking is False else unable)
        return {}
    effort = _effort(budget) if isinstance(budget, int) and kind == "enabled" else "medium"
    effort = asked or effort
    if param == "think":
        return {"think": True}
    if param == "reasoning_effort":
        return {"reasoning_effort": effort}
    by_budget = kind == "enabled"
    return {"reasoning": {"max_tokens": budget} if by_budget else {"effort": effort}}


def _effort(budget: int) -> str:
    return next((effort for top, effort in _EFFORT_LIMITS if budget < top), "high")


def reasoning_within(out: dict[str, Any]) -> list[Degradation]:
    """A translated request's reasoning budget (OpenRouter's `reasoning:
    {max_tokens}`) kept below its max_tokens once that is clamped to the
    provider's limit (fit_budget), named as the Anthropic client asked it."""
    asked, limit = out.get("reasoning"), out.get("max_tokens")
    if not isinstance(asked, dict) or not isinstance(limit, int):
        return []
    fitted, degraded = fit_budget(asked, "max_tokens", limit, ("thinking", "budget_tokens"))
    if fitted is None:
        del out["reasoning"]
    else:
        out["reasoning"] = fitted
    return degraded
