"""Why a model stopped, in Anthropic's words (pure).

OpenAI's finish_reason values and the Anthropic stop_reason each means.
"""

from __future__ import annotations

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_of_finish(finish: object) -> str | None:
    """The stop_reason of an OpenAI finish_reason; one not in the table is
    kept as it is (the set is open), none is None."""
    if not isinstance(finish, str) or not finish:
        return None
    return FINISH_TO_STOP.get(finish, finish)
