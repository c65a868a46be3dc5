"""The auto router: a profile chosen by what a request holds (pure).

With `default_profile: auto`, a request that names no profile (header, body
`profile`, or a model equal to a profile or provider name) goes to the
profile of the first `auto_router.rules` entry that matches it, or to
`default_rule_profile` when none does. Without rules the built-in ones
apply: an image in the turn goes to `multi`, a message that is mostly code
to `coding`, the rest to `writing`.

What the rules read (ingress/turn.py finds it, in either dialect):

- the *turn*: the user's latest own message (a message of tool results is
  the agent's, not the user's: a coding agent's session would otherwise
  change profile at every tool call) and the tool results after it;
- its *text*: that message's text; content_contains and content_regex
  search it, code_fence_ratio_min compares the share of it inside ```
  fences (the fences included);
- has_image: any image in the turn, tool results' included (a screenshot
  a tool took needs a model that sees it as much as one the user pasted);
- model_pattern: the whole model name the client sent;
- content_token_count_min: the whole prompt (system, tools, every message),
  estimated at four bytes of JSON a token, since a long tool result fills a
  context window as surely as a long question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coderouterd.config.model import BUILTIN_AUTO_RULES, AutoRouterConfig, AutoRule, RuleMatch

_FENCE = re.compile(r"```[\s\S]*?```")


@dataclass(frozen=True, slots=True)
class Turn:
    """What the rules read of one request."""

    text: str
    has_image: bool
    model: str | None
    estimated_tokens: int


@dataclass(frozen=True, slots=True)
class AutoChoice:
    profile: str
    # The id of the rule that matched; None when none did (or the router is disabled).
    rule: str | None


def fence_ratio(text: str) -> float:
    """The share of `text` inside closed ``` fences, fences included."""
    if not text:
        return 0.0
    return sum(len(m.group()) for m in _FENCE.finditer(text)) / len(text)


class AutoRouter:
    def __init__(self, config: AutoRouterConfig) -> None:
        self.config = config
        rules = config.rules or BUILTIN_AUTO_RULES
        # Patterns were checked when the config loaded.
        self._rules = [(rule, _compile(rule.match)) for rule in rules]

    @property
    def rules(self) -> tuple[AutoRule, ...]:
        return tuple(rule for rule, _ in self._rules)

    def choose(self, turn: Turn) -> AutoChoice:
        if not self.config.disabled:
            for rule, pattern in self._rules:
                if _matches(rule.match, pattern, turn):
                    return AutoChoice(rule.profile, rule.id)
        return AutoChoice(self.config.default_rule_profile, None)


def describe(config: AutoRouterConfig) -> list[str]:
    """What the auto router will do, for `coderouterd check`."""
    if config.disabled:
        return [f"disabled: every request goes to {config.default_rule_profile}"]
    builtin = "" if config.rules else " (built-in)"
    lines = []
    for rule in config.rules or BUILTIN_AUTO_RULES:
        [(key, value)] = [
            (k, v) for k in RuleMatch.__struct_fields__ if (v := getattr(rule.match, k)) is not None
        ]
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        lines.append(f"{rule.id}{builtin}: {key} {shown} -> {rule.profile}")
    lines.append(f"no rule matches -> {config.default_rule_profile}")
    return lines


def _compile(match: RuleMatch) -> re.Pattern[str] | None:
    source = match.content_regex if match.content_regex is not None else match.model_pattern
    return re.compile(source) if source is not None else None


def _matches(match: RuleMatch, pattern: re.Pattern[str] | None, turn: Turn) -> bool:
    if match.has_image is not None:
        return turn.has_image is match.has_image
    if match.code_fence_ratio_min is not None:
        return fence_ratio(turn.text) >= match.code_fence_ratio_min
    if match.content_contains is not None:
        return match.content_contains in turn.text
    if match.content_token_count_min is not None:
        return turn.estimated_tokens >= match.content_token_count_min
    if match.model_pattern is not None:
        model = turn.model
        return model is not None and pattern is not None and pattern.fullmatch(model) is not None
    return pattern is not None and pattern.search(turn.text) is not None
