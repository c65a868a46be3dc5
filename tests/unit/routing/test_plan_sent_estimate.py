"""The plan judges each provider's window against the prompt's estimate as
that provider is sent it, asked only of the providers that have a window."""

from __future__ import annotations

import pytest

from coderouterd.config import load_config_text
from coderouterd.routing.plan import Route, Skip, plan_attempts

CONFIG = load_config_text(
    """
providers:
  - {name: tooled, base_url: "http://127.0.0.1:1", model: m}
  - {name: bare, base_url: "http://127.0.0.1:2", model: m}
  - {name: big, base_url: "http://127.0.0.1:3", model: m}
profiles:
  - {name: fits, providers: [tooled, bare, big], context_action: skip}
""",
    file="t.yaml",
)
# What each is sent: `bare` none of the 900 tokens of tools.
SENT = {"tooled": 1000, "bare": 100, "big": 1000}


@pytest.mark.parametrize(
    ("windows", "attempts", "skipped", "asked"),
    [
        ({"tooled": 500, "bare": 500}, ["bare", "big"], [Skip("tooled", "context_too_small")],
         ["tooled", "bare"]),
        # Of the providers with no window, none is asked for its estimate.
        ({"bare": 50}, ["tooled", "big"], [Skip("bare", "context_too_small")], ["bare"]),
    ],
)  # fmt: skip
def test_each_window_is_judged_against_what_its_provider_is_sent(
    windows: dict[str, int], attempts: list[str], skipped: list[Skip], asked: list[str]
) -> None:
    seen: list[str] = []

    def sent_to(provider: str) -> int:
        seen.append(provider)
        return SENT[provider]

    plan = plan_attempts(CONFIG, Route("fits"), prompt_tokens=sent_to, windows=windows)
    assert [p.name for p in plan.attempts] == attempts
    assert list(plan.skipped) == skipped
    assert seen == asked
