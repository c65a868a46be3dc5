"""Where an `adaptive` profile puts slow providers: each right after the
provider that followed it, two slow ones side by side included (two local
servers sharing one GPU slow down together)."""

from __future__ import annotations

from coderouterd.config import load_config_text
from coderouterd.routing.plan import Route, plan_attempts

CONFIG = """
providers:
  - {name: gpu_a, base_url: "http://127.0.0.1:1", model: m}
  - {name: gpu_b, base_url: "http://127.0.0.1:2", model: m}
  - {name: gpu_c, base_url: "http://127.0.0.1:3", model: m}
  - {name: cloud, base_url: "http://127.0.0.1:4", model: m}
profiles:
  - {name: fast, providers: [gpu_a, gpu_b, gpu_c, cloud], adaptive: true}
  - {name: pair, providers: [gpu_a, gpu_b, cloud], adaptive: true}
  - {name: drifting, providers: [gpu_a, gpu_b, cloud], adaptive: true, drift_action: demote}
"""


def order(profile: str, slow: set[str], drift_demoted: frozenset[str] = frozenset()) -> list[str]:
    config = load_config_text(CONFIG, file="c.yaml")
    plan = plan_attempts(config, Route(profile), slow=slow, drift_demoted=drift_demoted)
    return [p.name for p in plan.attempts]


# Profile, slow providers, the order tried.
CASES: list[tuple[str, set[str], list[str]]] = [
    # Two side by side: the second after the one that followed both, the first after it.
    ("pair", {"gpu_a", "gpu_b"}, ["cloud", "gpu_b", "gpu_a"]),
    ("fast", {"gpu_a", "gpu_b"}, ["gpu_c", "gpu_b", "gpu_a", "cloud"]),
    ("fast", {"gpu_b", "gpu_c"}, ["gpu_a", "cloud", "gpu_c", "gpu_b"]),
    ("fast", {"gpu_a", "gpu_b", "gpu_c"}, ["cloud", "gpu_c", "gpu_b", "gpu_a"]),
    # One alone: one place later; the last has no follower and stays.
    ("pair", {"gpu_a"}, ["gpu_b", "gpu_a", "cloud"]),
    ("fast", {"gpu_b"}, ["gpu_a", "gpu_c", "gpu_b", "cloud"]),
    ("pair", {"cloud"}, ["gpu_a", "gpu_b", "cloud"]),
    # Two apart: each after its own follower.
    ("fast", {"gpu_a", "gpu_c"}, ["gpu_b", "gpu_a", "cloud", "gpu_c"]),
    ("pair", set(), ["gpu_a", "gpu_b", "cloud"]),
]


def test_each_slow_provider_is_tried_right_after_the_one_that_followed_it() -> None:
    got = [(profile, sorted(slow), order(profile, slow)) for profile, slow, _ in CASES]
    assert got == [(profile, sorted(slow), expected) for profile, slow, expected in CASES]


def test_a_drift_demotion_still_comes_after_the_slow_ones_are_placed() -> None:
    ordered = order("drifting", {"gpu_a", "gpu_b"}, drift_demoted=frozenset({"cloud"}))
    assert ordered == ["gpu_b", "gpu_a", "cloud"]
