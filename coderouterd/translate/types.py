"""Values shared by every translator (pure)."""

from __future__ import annotations

from typing import Literal

import msgspec


class Degradation(msgspec.Struct, frozen=True):
    """Something the client sent that the target dialect or model cannot carry.

    Recorded once per request as a `capability.degraded` event.
    """

    field: str
    reason: str


ThinkMode = Literal["off", "strip", "thinking"]


class OutputFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Per-provider clean-up of model output, decided by config and capabilities.

    think: "strip" drops <think>…</think> text, "thinking" turns it into a
    thinking block, "off" leaves it as text. strip_tool_markup removes stray
    tool-call markup that repair could not lift. repair_tool_calls lifts
    tool calls written as text into tool_use blocks.
    """

    think: ThinkMode = "off"
    strip_tool_markup: bool = False
    repair_tool_calls: bool = False
