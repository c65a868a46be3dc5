"""What each Claude generation is said to take (the bundled registry), and
how a request's thinking, effort and sampling are fitted to it (thinking_shape)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from coderouterd.translate.capabilities import ModelCapabilities, load_registry
from coderouterd.translate.thinking_shape import claude_shape, effort_for_budget

_encode = msgspec.json.encode

GENERATIONS = [
    # model, thinking_modes, effort, sampling, max_output_tokens
    ("claude-3-5-haiku-20241022", None, False, None, None),
    ("claude-3-7-sonnet-20250219", "budget", False, None, None),
    ("claude-opus-4-20250514", "budget", False, None, 32000),
    ("claude-opus-4-0", "budget", False, None, 32000),
    ("claude-opus-4-1-20250805", "budget", False, None, 32000),
    ("claude-sonnet-4-20250514", "budget", False, None, None),
    ("claude-sonnet-4-0", "budget", False, None, None),
    ("claude-sonnet-4-5-20250929", "budget", False, None, None),
    ("claude-haiku-4-5", "budget", False, None, None),
    ("claude-opus-4-5-20251101", "budget", True, None, None),
    ("claude-opus-4-6", "both", True, None, None),
    ("claude-sonnet-4-6", "both", True, None, None),
    ("claude-opus-4-7", "adaptive", True, False, None),
    ("claude-opus-4-8", "adaptive", True, False, None),
    # Unknown to the rules: sent as the client shaped it.
    ("claude-opus-4-9", None, None, None, None),
    ("claude-model", None, None, None, None),
]


@pytest.mark.parametrize(("model", "modes", "effort", "sampling", "ceiling"), GENERATIONS)
def test_the_bundled_rules_say_which_thinking_each_claude_generation_takes(
    model: str, modes: str | None, effort: bool | None, sampling: bool | None, ceiling: int | None
) -> None:
    caps = load_registry(None).lookup("anthropic", model)
    assert (caps.thinking_modes, caps.effort, caps.sampling, caps.max_output_tokens) == (
        modes,
        effort,
        sampling,
        ceiling,
    )


@pytest.mark.parametrize(
    ("budget", "effort"),
    [
        (1024, "low"),
        (2048, "low"),
        (4096, "low"),
        (8192, "medium"),
        (24576, "high"),
        (31999, "high"),
    ],
)
def test_a_budget_stands_for_the_effort_level_whose_budget_it_is_nearest(
    budget: int, effort: str
) -> None:
    assert effort_for_budget(budget) == effort


BUDGET = ModelCapabilities(thinking_modes="budget", effort=False)
ADAPTIVE = ModelCapabilities(thinking_modes="adaptive", sampling=False)
ADAPTIVE_NO_EFFORT = ModelCapabilities(thinking_modes="adaptive", effort=False)

FITS = [
    # caps, the request's fields, the fields sent
    (
        BUDGET,
        {"thinking": {"type": "adaptive", "display": "summarized"}, "max_tokens": 30000},
        {"thinking": {"type": "enabled", "display": "summarized", "budget_tokens": 24576}},
    ),
    (
        BUDGET,
        {"thinking": {"type": "adaptive"}},
        {"thinking": {"type": "enabled", "budget_tokens": 24576}},
    ),
    (
        BUDGET,
        {"thinking": {"type": "adaptive"}, "output_config": {"effort": "unheard-of"}},
        {"thinking": {"type": "enabled", "budget_tokens": 24576}},
    ),
    (BUDGET, {"thinking": {"type": "enabled", "budget_tokens": 2000}}, None),
    (BUDGET, {"thinking": {"type": "disabled"}}, None),
    (ADAPTIVE, {"thinking": {"type": "enabled"}}, {"thinking": {"type": "adaptive"}}),
    (
        ADAPTIVE,
        {"thinking": {"type": "enabled", "budget_tokens": 9000}, "output_config": {"format": "x"}},
        {"thinking": {"type": "adaptive"}, "output_config": {"format": "x", "effort": "medium"}},
    ),
    (
        ADAPTIVE_NO_EFFORT,
        {"thinking": {"type": "enabled", "budget_tokens": 9000}},
        {"thinking": {"type": "adaptive"}},
    ),
    (ADAPTIVE, {"thinking": {"type": "adaptive"}, "top_p": 0.9}, {"top_p": msgspec.UNSET}),
    (ADAPTIVE, {"thinking": "enabled"}, None),
]


@pytest.mark.parametrize(("caps", "asked", "changed"), FITS)
def test_a_requests_thinking_is_fitted_to_the_model_only_where_it_needs_it(
    caps: ModelCapabilities, asked: dict[str, Any], changed: dict[str, Any] | None
) -> None:
    shape = claude_shape(caps)
    assert shape is not None
    fields = {k: msgspec.Raw(_encode(v)) for k, v in asked.items()}
    degraded = shape.fit(fields)
    expected = {**asked, **(changed or {})}
    expected = {k: v for k, v in expected.items() if v is not msgspec.UNSET}
    assert {k: msgspec.json.decode(v) for k, v in fields.items()} == expected
    assert bool(degraded) == (changed is not None)


def test_a_model_that_takes_requests_as_clients_shape_them_costs_nothing() -> None:
    assert claude_shape(ModelCapabilities()) is None
    assert claude_shape(ModelCapabilities(thinking_modes="both", effort=True)) is None
