"""Token estimates where no tokenizer is at hand (pure).

JSON-encoded English and code average close to four bytes per token; an
estimate is always marked as one wherever it is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sized

BYTES_PER_TOKEN = 4
_PROMPT_FIELDS = ("system", "messages", "tools")


def estimate_prompt_tokens(fields: Mapping[str, Sized]) -> int:
    counted = sum(len(fields[f]) for f in _PROMPT_FIELDS if f in fields)
    return max(1, math.ceil(counted / BYTES_PER_TOKEN))


def estimate_text_tokens(chars: int) -> int:
    return math.ceil(chars / BYTES_PER_TOKEN)
