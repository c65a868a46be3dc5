"""The auto router's rules, and what it reads of a request in either dialect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coderouterd.config.model import AutoRouterConfig, AutoRule, RuleMatch
from coderouterd.ingress.body import BodyMemo, RequestBody, parse_body
from coderouterd.ingress.turn import read_turn
from coderouterd.routing.auto import AutoChoice, AutoRouter, Turn, describe, fence_ratio

FENCED = "fix this:\n```py\nx = 1\ny = 2\n```"


def turn(text: str = "", *, image: bool = False, model: str | None = "m", tokens: int = 10) -> Turn:
    return Turn(text, image, model, tokens)


def rule(rule_id: str, profile: str, **match: Any) -> AutoRule:
    return AutoRule(id=rule_id, profile=profile, match=RuleMatch(**match))


def router(*rules: AutoRule, disabled: bool = False) -> AutoRouter:
    return AutoRouter(AutoRouterConfig(rules=rules, default_rule_profile="rest", disabled=disabled))


def test_fence_ratio_counts_closed_fences_with_their_backticks() -> None:
    assert fence_ratio("") == 0.0
    assert fence_ratio("```a```") == 1.0
    assert fence_ratio(FENCED) == pytest.approx(len("```py\nx = 1\ny = 2\n```") / len(FENCED))
    assert fence_ratio("```never closed") == 0.0


@pytest.mark.parametrize(
    ("match", "seen", "matched"),
    [
        ({"has_image": True}, turn(image=True), True),
        ({"has_image": True}, turn(), False),
        ({"has_image": False}, turn(), True),
        ({"code_fence_ratio_min": 0.3}, turn(FENCED), True),
        ({"code_fence_ratio_min": 0.3}, turn("no code at all"), False),
        ({"content_contains": "[cloud]"}, turn("please [cloud] this"), True),
        ({"content_contains": "[cloud]"}, turn("please [Cloud] this"), False),
        ({"content_regex": r"(?i)\breview\b"}, turn("a quick Review please"), True),
        ({"content_regex": r"(?i)\breview\b"}, turn("reviewer"), False),
        ({"model_pattern": "claude-(3-5-)?haiku.*"}, turn(model="claude-haiku-4-5"), True),
        ({"model_pattern": "claude-(3-5-)?haiku.*"}, turn(model="x-claude-haiku"), False),
        ({"model_pattern": ".*"}, turn(model=None), False),
        ({"content_token_count_min": 100}, turn(tokens=100), True),
        ({"content_token_count_min": 100}, turn(tokens=99), False),
    ],
)
def test_each_matcher(match: dict[str, Any], seen: Turn, matched: bool) -> None:
    expected = AutoChoice("hit", "r") if matched else AutoChoice("rest", None)
    assert router(rule("r", "hit", **match)).choose(seen) == expected


def test_the_first_rule_that_matches_wins() -> None:
    rules = (
        rule("big", "long", content_token_count_min=5),
        rule("img", "vision", has_image=True),
    )
    assert router(*rules).choose(turn(image=True, tokens=6)) == AutoChoice("long", "big")
    assert router(*rules).choose(turn(image=True, tokens=1)) == AutoChoice("vision", "img")


def test_disabled_sends_everything_to_the_default_rule_profile() -> None:
    r = router(rule("img", "vision", has_image=True), disabled=True)
    assert r.choose(turn(image=True)) == AutoChoice("rest", None)
    assert describe(r.config) == ["disabled: every request goes to rest"]


def test_no_rules_means_the_built_in_ones() -> None:
    r = AutoRouter(AutoRouterConfig())
    assert r.choose(turn(image=True)) == AutoChoice("multi", "builtin:image-attachment")
    assert r.choose(turn(FENCED)) == AutoChoice("coding", "builtin:code-fence-dense")
    assert r.choose(turn("write a poem")) == AutoChoice("writing", None)
    assert describe(r.config) == [
        "builtin:image-attachment (built-in): has_image true -> multi",
        "builtin:code-fence-dense (built-in): code_fence_ratio_min 0.3 -> coding",
        "no rule matches -> writing",
    ]


# --- what is read of a request


def compact(messages: list[dict[str, Any]], model: str = "claude-haiku-4-5") -> bytes:
    body = {"model": model, "max_tokens": 10, "system": "be brief", "messages": messages}
    return json.dumps(body, separators=(",", ":")).encode()


def read(messages: list[dict[str, Any]], how: str) -> Turn:
    parsed: RequestBody
    if how == "memo":
        # A conversation growing turn by turn: bounds known, read from its end.
        memo = BodyMemo()
        for n in range(1, len(messages) + 1):
            parsed = memo.parse(compact(messages[:n]))
        assert parsed.bounds
    else:
        parsed = parse_body(
            json.dumps({"model": "claude-haiku-4-5", "messages": messages}).encode()
        )
        assert not parsed.bounds
    return read_turn(parsed)


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
CALL = {"type": "tool_use", "id": "t1", "name": "Screenshot", "input": {}}


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_the_users_own_message_is_read_past_the_agents_tool_results(how: str) -> None:
    messages = [
        {"role": "user", "content": "older question"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": FENCED}]},
        {"role": "assistant", "content": [CALL]},
        # Tool results, with an image and a reminder beside them: the agent's.
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [IMAGE]},
                {"type": "text", "text": "<system-reminder>x</system-reminder>"},
            ],
        },
    ]
    seen = read(messages, how)
    assert seen.text == FENCED
    assert seen.has_image is True
    assert seen.model == "claude-haiku-4-5"
    assert seen.estimated_tokens > 0


@pytest.mark.parametrize("how", ["memo", "whole"])
def test_an_openai_history_reads_the_same(how: str) -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "text", "text": "in this?"},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "c", "content": "result"},
    ]
    seen = read(messages, how)
    assert (seen.text, seen.has_image) == ("what is\nin this?", True)


def test_an_image_before_the_users_latest_message_is_not_this_turns() -> None:
    messages = [
        {"role": "user", "content": [IMAGE, {"type": "text", "text": "look"}]},
        {"role": "assistant", "content": "seen"},
        {"role": "user", "content": "now write"},
    ]
    seen = read(messages, "whole")
    assert (seen.text, seen.has_image) == ("now write", False)


def test_a_history_of_tool_results_only_has_no_text() -> None:
    messages = [
        {"role": "assistant", "content": [CALL]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    assert read(messages, "whole").text == ""
