"""A window is learned on the prompt the refusing provider was sent (its
attempt's estimate), not on the request's, which is the answering
provider's: measured without the tools when that one cannot call them."""

from __future__ import annotations

from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.routing.windows import LearnedWindows
from tests.integration.state.support_db import ManualClock


def answered_without_tools(refused_estimate: int | None) -> RequestSummary:
    """`local` refused the prompt (1475 tokens of its 1310); `notools`, sent
    it without the tools (309 estimated tokens where `local` got 1344),
    answered."""
    refused = AttemptRecord(
        provider="local", outcome="too_long", reason="context_exceeded", status=400,
        prompt_tokens=1475, context_window=1310, prompt_estimate=refused_estimate,
    )  # fmt: skip
    answered = AttemptRecord(provider="notools", outcome="ok", status=200, prompt_estimate=309)
    return RequestSummary(
        request_id="r", dialect="anthropic", profile="default", requested_model="m",
        provider="notools", attempts=(refused, answered), status=200, stream=False,
        ttfb_ms=1.0, total_ms=2.0, usage=None, prompt_estimate=309,
    )  # fmt: skip


def test_the_limit_is_learned_on_the_prompt_the_refusing_provider_was_sent() -> None:
    windows = LearnedWindows(ManualClock())
    windows.take([answered_without_tools(1344)])
    # 1344 estimated, counted 1475 against 1310: about 1193 estimated fits.
    assert windows.limits({}) == {"local": 1344 * 1310 // 1475}
    # An attempt that kept no estimate is judged on the request's.
    windows = LearnedWindows(ManualClock())
    windows.take([answered_without_tools(None)])
    assert windows.limits({}) == {"local": 309 * 1310 // 1475}
