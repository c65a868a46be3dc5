"""Which answers say a backend cut its prompt."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from coderouterd.routing.records import RequestSummary
from coderouterd.telemetry.logging import get_logger
from coderouterd.telemetry.truncation import MIN_TOKENS, REPEAT_S, TruncationWatch
from coderouterd.wire.usage import Usage
from tests.integration.state.support_db import ManualClock


def summary(sent: int, usage: Usage | None, **kw: Any) -> RequestSummary:
    fields: dict[str, Any] = {
        "request_id": "r",
        "dialect": "anthropic",
        "profile": "p",
        "requested_model": None,
        "provider": "local",
        "attempts": (),
        "status": 200,
        "stream": False,
        "ttfb_ms": None,
        "total_ms": 1.0,
        "usage": usage,
        "prompt_estimate": sent,
        **kw,
    }
    return RequestSummary(**fields)


@pytest.mark.parametrize(
    ("sent", "usage", "estimated", "cut", "image_tokens"),
    [
        (20_000, Usage(input_tokens=4096), False, True, 0),
        # Cache reads count as read: Claude's cached prompt is no cut.
        (20_000, Usage(input_tokens=10, cache_read_input_tokens=19_000), False, False, 0),
        (20_000, Usage(input_tokens=9_000), False, False, 0),  # the estimate is rough
        (20_000, Usage(input_tokens=4096), True, False, 0),  # our own estimate, not the backend's
        (20_000, Usage(output_tokens=5), False, False, 0),  # the backend did not say
        (20_000, Usage(input_tokens=0), False, False, 0),
        (MIN_TOKENS - 1, Usage(input_tokens=10), False, False, 0),  # too small to judge
        # Ten screenshots (1600 tokens each), counted 30 each by a small vision model:
        # judged on the text, 6000 tokens, read whole...
        (22_000, Usage(input_tokens=6_300), False, False, 16_000),
        # ...or cut; and too little text to judge.
        (22_000, Usage(input_tokens=2_000), False, True, 16_000),
        (20_000, Usage(input_tokens=100), False, False, 17_600),
        # Ten icons at 54 tokens each leave 11,460 tokens of text, cut.
        (12_000, Usage(input_tokens=3_000), False, True, 540),
    ],
)
def test_what_counts_as_a_cut_prompt(
    sent: int, usage: Usage, estimated: bool, cut: bool, image_tokens: int
) -> None:
    watch = TruncationWatch(get_logger(), ManualClock())
    watch.take([summary(sent, usage, usage_estimated=estimated, prompt_image_tokens=image_tokens)])
    assert watch.counts["local"] == int(cut)


def test_the_warning_is_repeated_at_most_every_ten_minutes() -> None:
    clock = ManualClock()
    watch = TruncationWatch(get_logger(), clock)
    cut = summary(20_000, Usage(input_tokens=2048))
    with capture_logs() as logs:
        watch.take([cut, cut])
        clock.advance(REPEAT_S - 1)
        watch.take([cut])
        clock.advance(1)
        watch.take([cut])
    assert len(logs) == 2 and watch.counts["local"] == 4
