"""The usage a whole (non-streamed) answer is accounted at (pure).

An answer whose backend reports no usage, or leaves out its input or its
output count (a gateway that drops `usage`, a compatible server that never
writes it), has the missing counts estimated as a stream that ends without
its usage has (anthropic_passthrough, openai_passthrough): the input at the
prompt's estimate, the output at a quarter of what the model produced, and
the usage marked estimated. A priced provider is so charged, and its
budget moves, whichever way it answers. An answer with both counts is
taken as reported, and nothing more is read of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from coderouterd.routing.call import Call
from coderouterd.translate.estimate import estimate_prompt_tokens, estimate_text_tokens
from coderouterd.translate.openai_passthrough import produced_in_completion
from coderouterd.wire.usage import Usage, filled

_encode = msgspec.json.Encoder().encode


def answer_usage(
    reported: Usage | None, call: Call, produced: Callable[[], int]
) -> tuple[Usage | None, bool]:
    """(usage, estimated), the counts `reported` lacks estimated (wire.usage
    `filled`). `produced` gives the characters (or bytes) of the model's
    output, read only when the output count is missing."""
    return filled(
        reported,
        lambda: estimate_prompt_tokens(call.fields, call.media),
        lambda: estimate_text_tokens(produced()),
    )


def message_usage(
    reported: Usage | None, message: Mapping[str, Any], call: Call
) -> tuple[Usage | None, bool]:
    """answer_usage of an Anthropic message: its output counted as the bytes
    of its content encoded, as the Anthropic passthrough counts a stream's
    content deltas (their JSON, undecoded)."""
    return answer_usage(reported, call, lambda: len(_encode(message.get("content"))))


def completion_usage(reported: Usage | None, body: bytes, call: Call) -> tuple[Usage | None, bool]:
    """answer_usage of an OpenAI completion: its output counted as the OpenAI
    passthrough counts a stream's deltas (openai_passthrough)."""
    return answer_usage(reported, call, lambda: produced_in_completion(body))
