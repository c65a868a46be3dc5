"""Thinking taken out of a request takes the clear_thinking edits that need
it along, whatever the thinking asked (table)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from coderouterd.translate.thinking_removal import CLEAR_THINKING_DROPPED, remove_thinking
from coderouterd.translate.types import Degradation

WHY = Degradation("thinking", "the model cannot reason")
CLEAR = {"type": "clear_thinking_20251015", "keep": "all"}
TOOLS = {"type": "clear_tool_uses_20250919"}


def raw_fields(body: dict[str, Any]) -> dict[str, msgspec.Raw]:
    return {k: msgspec.Raw(json.dumps(v).encode()) for k, v in body.items()}


@pytest.mark.parametrize(
    ("body", "left", "degraded"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, {}, [WHY]),
        (
            {"thinking": {"type": "enabled"}, "context_management": {"edits": [CLEAR]}},
            {},
            [WHY, CLEAR_THINKING_DROPPED],
        ),
        (
            {"thinking": {"type": "adaptive"}, "context_management": {"edits": [CLEAR, TOOLS]}},
            {"context_management": {"edits": [TOOLS]}},
            [WHY, CLEAR_THINKING_DROPPED],
        ),
        (
            {"thinking": {"type": "enabled"}, "context_management": {"edits": [], "x": 1}},
            {"context_management": {"edits": [], "x": 1}},
            [WHY],
        ),
        # A backend that takes no thinking field takes none, disabled or not.
        (
            {"thinking": {"type": "disabled"}, "context_management": {"edits": [CLEAR]}},
            {},
            [WHY, CLEAR_THINKING_DROPPED],
        ),
        # No thinking: nothing is touched.
        (
            {"context_management": {"edits": [CLEAR]}},
            {"context_management": {"edits": [CLEAR]}},
            [],
        ),
    ],
)
def test_clear_thinking_edits_go_with_thinking(
    body: dict[str, Any], left: dict[str, Any], degraded: list[Degradation]
) -> None:
    fields = raw_fields(body)
    assert remove_thinking(fields, WHY) == degraded
    assert {k: json.loads(bytes(v)) for k, v in fields.items()} == left
