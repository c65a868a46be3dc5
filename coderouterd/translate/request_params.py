"""The parameters of an Anthropic request in OpenAI terms: limits, sampling, reasoning (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coderouterd.errors import InvalidRequestError
from coderouterd.translate.capabilities import THINKING_UNSUPPORTED, ModelCapabilities
from coderouterd.translate.types import Notes, number_or_none

_EFFORT_LIMITS = ((4096, "low"), (16384, "medium"))


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


def reasoning(raw: object, caps: ModelCapabilities, notes: Notes) -> dict[str, Any]:
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
    if param == "think":
        return {"think": True}
    if param == "reasoning_effort":
        return {"reasoning_effort": effort}
    by_budget = kind == "enabled"
    return {"reasoning": {"max_tokens": budget} if by_budget else {"effort": effort}}


def _effort(budget: int) -> str:
    return next((effort for top, effort in _EFFORT_LIMITS if budget < top), "high")
