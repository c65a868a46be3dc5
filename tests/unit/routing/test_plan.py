"""Planning a chain and choosing a route: tables over pure functions."""

from __future__ import annotations

import msgspec
import pytest

from coderouterd.config import load_config_text
from coderouterd.config.model import AutoRouterConfig
from coderouterd.errors import UnknownProfileError
from coderouterd.routing.plan import Route, Skip, choose_route, plan_attempts
from coderouterd.routing.verdict import Verdict, classify_status

CONFIG = load_config_text(
    """
providers:
  - {name: local, kind: anthropic, base_url: "http://127.0.0.1:1", model: m}
  - {name: cloud, kind: anthropic, base_url: "http://127.0.0.1:2", model: m, paid: true}
  - {name: spare, kind: anthropic, base_url: "http://127.0.0.1:3", model: m}
profiles:
  - {name: main, providers: [local, cloud, spare]}
  - {name: paid-ok, providers: [cloud, local], allow_paid: true}
  - {name: paid-no, providers: [cloud, local], allow_paid: false}
""",
    file="test.yaml",
)


def names(plan) -> tuple[list[str], list[tuple[str, str]]]:
    return [p.name for p in plan.attempts], [(s.provider, s.reason) for s in plan.skipped]


@pytest.mark.parametrize(
    ("route", "unavailable", "attempts", "skipped"),
    [
        (Route("main"), {}, ["local", "spare"], [("cloud", "paid_blocked")]),
        (Route("paid-ok"), {}, ["cloud", "local"], []),
        (Route("paid-no"), {}, ["local"], [("cloud", "paid_blocked")]),
        (
            Route("main"),
            {"local": "missing_api_key"},
            ["spare"],
            [("local", "missing_api_key"), ("cloud", "paid_blocked")],
        ),
        (Route("main", only_provider="spare"), {}, ["spare"], []),
        (Route("main", only_provider="cloud"), {}, [], [("cloud", "paid_blocked")]),
    ],
)
def test_plan_attempts(route: Route, unavailable: dict, attempts: list, skipped: list) -> None:
    assert names(plan_attempts(CONFIG, route, unavailable=unavailable)) == (attempts, skipped)


def test_global_allow_paid_is_overridden_by_profile() -> None:
    generous = msgspec.structs.replace(CONFIG, allow_paid=True)
    assert names(plan_attempts(generous, Route("main")))[0] == ["local", "cloud", "spare"]
    assert names(plan_attempts(generous, Route("paid-no")))[0] == ["local"]


@pytest.mark.parametrize(
    ("header", "body", "model", "expected"),
    [
        (None, None, None, Route("main")),
        ("paid-ok", None, None, Route("paid-ok")),
        (None, "paid-no", None, Route("paid-no")),
        ("paid-ok", "paid-no", None, Route("paid-ok")),
        (None, None, "paid-no", Route("paid-no")),
        (None, None, "spare", Route("main", only_provider="spare")),
        (None, None, "claude-opus-4", Route("main")),
    ],
)
def test_choose_route(header, body, model, expected: Route) -> None:
    assert choose_route(CONFIG, header=header, body_profile=body, model=model) == expected


AUTO = msgspec.structs.replace(
    CONFIG,
    default_profile="auto",
    auto_router=AutoRouterConfig(default_rule_profile="paid-no"),
)


@pytest.mark.parametrize(
    ("header", "body", "model", "expected"),
    [
        # Only a request that chooses nothing is the auto router's.
        (None, None, None, Route("paid-no", auto=True)),
        (None, None, "claude-opus-4", Route("paid-no", auto=True)),
        ("main", None, None, Route("main")),
        (None, "main", None, Route("main")),
        (None, None, "main", Route("main")),
        (None, None, "spare", Route("paid-no", only_provider="spare")),
    ],
)
def test_choose_route_with_the_auto_router(header, body, model, expected: Route) -> None:
    assert choose_route(AUTO, header=header, body_profile=body, model=model) == expected


ALIASED = msgspec.structs.replace(CONFIG, mode_aliases={"fast": "paid-no", "main": "paid-ok"})


@pytest.mark.parametrize(
    ("profile", "mode", "body", "expected"),
    [
        # The profile header names a profile; it wins over the mode and the body.
        ("main", "fast", "paid-ok", Route("main")),
        (None, "fast", "main", Route("paid-no")),
        # An alias wins over a profile of the same name; a profile name is a mode too.
        (None, "main", None, Route("paid-ok")),
        (None, "paid-no", None, Route("paid-no")),
        (None, None, "paid-ok", Route("paid-ok")),
    ],
)
def test_choose_route_by_header_alias_and_body(profile, mode, body, expected: Route) -> None:
    chosen = choose_route(
        ALIASED, header=mode, profile_header=profile, body_profile=body, model=None
    )
    assert chosen == expected


def test_an_unknown_mode_lists_the_modes_and_the_profiles() -> None:
    with pytest.raises(UnknownProfileError) as info:
        choose_route(ALIASED, header="slow", body_profile=None, model=None)
    assert info.value.field == "x-coderouter-mode"
    assert "modes: fast, main; profiles: main, paid-ok, paid-no" in str(info.value)


def test_the_profile_header_takes_only_profile_names() -> None:
    with pytest.raises(UnknownProfileError) as info:
        choose_route(ALIASED, header=None, profile_header="fast", body_profile=None, model=None)
    assert info.value.field == "x-coderouter-profile"


@pytest.mark.parametrize(
    ("header", "body", "field"), [("nope", None, "x-coderouter-mode"), (None, "nope", "profile")]
)
def test_unknown_profile_names_the_field(header, body, field: str) -> None:
    with pytest.raises(UnknownProfileError) as info:
        choose_route(CONFIG, header=header, body_profile=body, model=None)
    assert info.value.field == field
    assert "main" in info.value.message


@pytest.mark.parametrize(
    ("status", "error_type", "verdict"),
    [
        (200, None, Verdict.OK),
        (204, None, Verdict.OK),
        (400, None, Verdict.RETURN),
        (400, "overloaded_error", Verdict.NEXT),
        (401, "authentication_error", Verdict.RETURN),
        (404, None, Verdict.RETURN),
        (408, None, Verdict.NEXT),
        (409, None, Verdict.NEXT),
        (413, None, Verdict.RETURN),
        (422, None, Verdict.RETURN),
        (429, "rate_limit_error", Verdict.NEXT),
        (500, None, Verdict.NEXT),
        (502, None, Verdict.NEXT),
        (529, "overloaded_error", Verdict.NEXT),
    ],
)
def test_classify_status(status: int, error_type: str | None, verdict: Verdict) -> None:
    assert classify_status(status, error_type) is verdict


HEALING = load_config_text(
    """
providers:
  - {name: a, kind: anthropic, base_url: "http://127.0.0.1:1", model: m}
  - {name: b, kind: anthropic, base_url: "http://127.0.0.1:2", model: m}
  - {name: c, kind: anthropic, base_url: "http://127.0.0.1:3", model: m, paid: true}
profiles:
  - {name: skip, providers: [a, b, c], backend_health_action: exclude, allow_paid: true}
  - {name: last, providers: [a, b, c], backend_health_action: demote, allow_paid: true}
  - {name: keep, providers: [a, b], backend_health_action: warn}
  - {name: free, providers: [a, c], backend_health_action: exclude}
""",
    file="healing.yaml",
)


@pytest.mark.parametrize(
    ("profile", "excluded", "unavailable", "attempts", "skipped"),
    [
        ("skip", {"a"}, {}, ["b", "c"], [("a", "excluded")]),
        ("skip", {"a", "c"}, {}, ["b"], [("a", "excluded"), ("c", "excluded")]),
        ("last", {"a"}, {}, ["b", "c", "a"], []),
        ("last", {"a", "b"}, {}, ["c", "a", "b"], []),
        ("keep", {"a"}, {}, ["a", "b"], []),
        # Exclusions never empty a chain: the excluded are tried anyway, in order.
        ("skip", {"a", "b", "c"}, {}, ["a", "b", "c"], []),
        ("free", {"a"}, {}, ["a"], [("c", "paid_blocked")]),
        ("skip", {"a", "b"}, {"c": "budget_exceeded"}, ["a", "b"], [("c", "budget_exceeded")]),
        # A provider that cannot be tried anyway keeps its own reason.
        ("skip", {"a"}, {"a": "missing_api_key"}, ["b", "c"], [("a", "missing_api_key")]),
    ],
)
def test_plans_of_profiles_with_excluded_providers(
    profile: str, excluded: set, unavailable: dict, attempts: list, skipped: list
) -> None:
    plan = plan_attempts(HEALING, Route(profile), unavailable=unavailable, excluded=excluded)
    assert names(plan) == (attempts, skipped)


PRESSURE = load_config_text(
    """
providers:
  - {name: a, kind: anthropic, base_url: "http://127.0.0.1:1", model: m}
  - {name: b, kind: anthropic, base_url: "http://127.0.0.1:2", model: m}
profiles:
  - {name: skip, providers: [a, b], memory_pressure_action: skip}
  - {name: warn, providers: [a, b]}
  - {name: alone, providers: [a], memory_pressure_action: skip}
""",
    file="pressure.yaml",
)


@pytest.mark.parametrize(
    ("profile", "attempts", "skipped"),
    [
        ("skip", ["b"], [("a", "memory_pressure")]),
        ("warn", ["a", "b"], []),
        # Never an empty chain: a cooling provider is still tried when alone.
        ("alone", ["a"], []),
    ],
)
def test_plans_of_profiles_with_a_provider_cooling_down(
    profile: str, attempts: list, skipped: list
) -> None:
    plan = plan_attempts(PRESSURE, Route(profile), cooling={"a"})
    assert names(plan) == (attempts, skipped)


WINDOWS = load_config_text(
    """
providers:
  - {name: small, base_url: "http://127.0.0.1:1", model: m}
  - {name: big, base_url: "http://127.0.0.1:2", model: m}
profiles:
  - {name: fits, providers: [small, big], context_action: skip}
  - {name: tries, providers: [small, big], context_action: off}
  - {name: learns, providers: [small, big]}
  - {name: only-small, providers: [small], context_action: skip}
""",
    file="t.yaml",
)


@pytest.mark.parametrize(
    ("profile", "tokens", "attempts", "skipped"),
    [
        ("fits", 900, ["small", "big"], []),
        ("fits", 1001, ["big"], [Skip("small", "context_too_small")]),
        # A provider of unknown window is never skipped for it (big); nor is
        # any when the prompt's size is unknown.
        ("fits", 10**9, ["big"], [Skip("small", "context_too_small")]),
        ("fits", None, ["small", "big"], []),
        ("tries", 5000, ["small", "big"], []),
        # The default (learned) skips by the windows it is given: ingress
        # gives it only those learned from the backends.
        ("learns", 1001, ["big"], [Skip("small", "context_too_small")]),
        # Never an empty plan: a provider too small is still better than none.
        ("only-small", 5000, ["small"], []),
    ],
)
def test_a_provider_whose_window_is_smaller_than_the_prompt(
    profile: str, tokens: int | None, attempts: list[str], skipped: list[Skip]
) -> None:
    plan = plan_attempts(WINDOWS, Route(profile), prompt_tokens=tokens, windows={"small": 1000})
    assert [p.name for p in plan.attempts] == attempts
    assert list(plan.skipped) == skipped
