"""Context windows learned from overflow errors: the limit, its merge with the
configured windows, and its expiry."""

from __future__ import annotations

import msgspec

from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.routing.windows import FORGET_S, MAX_HOLD_S, LearnedWindows, limit_of
from coderouterd.state.overflows import Held, Overflow, Recent
from coderouterd.wire.usage import Usage
from tests.integration.state.support_db import ManualClock


def summary(*attempts: AttemptRecord, estimate: int = 50_000) -> RequestSummary:
    return RequestSummary(
        request_id="r", dialect="anthropic", profile="default", requested_model="m",
        provider=None, attempts=attempts, status=400, stream=True, ttfb_ms=None,
        total_ms=5.0, usage=None, prompt_estimate=estimate,
    )  # fmt: skip


def too_long(provider: str, tokens: int | None = None, window: int | None = None) -> AttemptRecord:
    return AttemptRecord(
        provider=provider, outcome="too_long", reason="context_exceeded", status=400,
        prompt_tokens=tokens, context_window=window,
    )  # fmt: skip


def test_the_limit_is_calibrated_by_the_backends_own_count() -> None:
    # 50k estimated, the backend counted 40960 against 32768: ~40k estimated fits.
    assert limit_of(50_000, 40_960, 32_768) == 40_000
    # Without its counts: anything from the estimate that failed on does not fit.
    assert limit_of(50_000, None, None) == 49_999
    assert limit_of(50_000, 40_960, None) == 49_999


def test_limits_lower_the_configured_windows_until_forgotten() -> None:
    clock = ManualClock()
    windows = LearnedWindows(clock)
    configured = {"local": 131_072, "cloud": 200_000}
    assert windows.limits(configured) is configured
    windows.take(
        [
            summary(
                too_long("local", 40_960, 32_768),
                too_long("vllm"),
                AttemptRecord(provider="cloud", outcome="failed", reason="http_500"),
            )
        ]
    )
    assert windows.limits(configured) == {"local": 40_000, "cloud": 200_000, "vllm": 49_999}
    learned = windows.learned("local")
    assert learned is not None and learned[0].window == 32_768
    clock.advance(FORGET_S - 1)
    assert windows.limits({})["local"] == 40_000
    clock.advance(1)
    assert windows.limits(configured) == configured
    assert windows.learned("local") is None


def test_a_later_overflow_replaces_what_was_learned() -> None:
    clock = ManualClock()
    windows = LearnedWindows(clock)
    windows.take([summary(too_long("local", 40_960, 32_768))])
    # Restarted with a larger window, and outgrown again.
    clock.advance(60)
    windows.take([summary(too_long("local", 70_000, 65_536), estimate=80_000)])
    assert windows.limits({}) == {"local": 74_898}


class SkewedClock(ManualClock):
    """Wall time far from monotonic time, as on a real machine."""

    def wall(self) -> float:
        return self.now + 1_000_000.0


def test_what_the_request_log_kept_is_loaded_by_its_age() -> None:
    clock = SkewedClock()
    windows = LearnedWindows(clock)
    wall = clock.wall()
    windows.load(
        recent(
            Overflow(provider="local", ts=wall - 120, prompt_estimate=50_000,
                     prompt_tokens=40_960, context_window=32_768),
            Overflow(provider="vllm", ts=wall - FORGET_S - 1, prompt_estimate=50_000,
                     prompt_tokens=None, context_window=None),
            # A clock set back since: as if learned just now, never in the future.
            Overflow(provider="lmstudio", ts=wall + 60, prompt_estimate=9_000,
                     prompt_tokens=None, context_window=None),
            # Forgotten since (ctl restore): not read back.
            Overflow(provider="ollama", ts=wall - 100, prompt_estimate=9_000,
                     prompt_tokens=None, context_window=None),
            forgotten={"ollama": wall - 50, "local": wall - 200},
        )
    )  # fmt: skip
    assert windows.limits({}) == {"local": 40_000, "lmstudio": 8_999}
    local = windows.learned("local")
    assert local is not None and local[0].window == 32_768 and local[1] == 120
    # Forgotten when it would have been, had the daemon not restarted.
    clock.advance(FORGET_S - 120)
    assert windows.learned("local") is None
    assert windows.limits({}) == {"lmstudio": 8_999}


def test_a_prompt_the_backend_cut_teaches_what_it_read_as_the_limit() -> None:
    clock = ManualClock()
    windows = LearnedWindows(clock)
    cut = msgspec.structs.replace(
        summary(AttemptRecord(provider="ollama", outcome="ok"), estimate=26_000),
        provider="ollama",
        usage=Usage(input_tokens=4000, output_tokens=5, cache_read_input_tokens=96),
    )
    # Read whole (or too short to judge): nothing learned.
    whole = msgspec.structs.replace(cut, usage=Usage(input_tokens=25_000, output_tokens=5))
    short = msgspec.structs.replace(cut, prompt_estimate=3000, usage=Usage(input_tokens=10))
    guessed = msgspec.structs.replace(cut, usage_estimated=True)
    windows.take([whole, short, guessed])
    assert windows.limits({}) == {}
    windows.take([cut])
    assert windows.limits({"ollama": 32_768}) == {"ollama": 4096}
    learned = windows.learned("ollama")
    assert learned is not None and learned[0].cut and learned[0].window is None


def test_the_latest_of_a_refusal_and_a_cut_read_back_wins() -> None:
    clock = SkewedClock()
    windows = LearnedWindows(clock)
    wall = clock.wall()
    windows.load(
        recent(
            Overflow(provider="local", ts=wall - 30, prompt_estimate=9_000, read_tokens=2048),
            Overflow(provider="local", ts=wall - 60, prompt_estimate=50_000,
                     prompt_tokens=40_960, context_window=32_768),
        )
    )  # fmt: skip
    learned = windows.learned("local")
    assert learned is not None and learned[0].cut and learned[0].limit == 2048


def test_a_prompt_over_the_limit_read_whole_forgets_it() -> None:
    told: list[tuple[str, dict[str, object]]] = []
    windows = LearnedWindows(ManualClock(), audit=lambda event, **f: told.append((event, f)))
    windows.take([summary(too_long("local", 40_960, 32_768))])
    assert windows.limits({}) == {"local": 40_000}
    read = Usage(input_tokens=30_000, output_tokens=5)
    fits = msgspec.structs.replace(summary(estimate=39_000), provider="local", usage=read)
    windows.take([fits])
    assert windows.limits({}) == {"local": 40_000}
    # Restarted with a larger window, it took a longer prompt than it refused before.
    grown = msgspec.structs.replace(fits, prompt_estimate=45_000)
    windows.take([grown])
    assert windows.limits({}) == {}
    assert told == [("provider.window_forgotten", {"provider": "local", "via": "read_whole"})]


def test_a_backend_failing_again_soon_after_its_chance_keeps_its_limit_longer() -> None:
    clock = ManualClock()
    windows = LearnedWindows(clock)

    def refused() -> None:
        windows.take([summary(too_long("local", 40_960, 32_768))])

    def held_for() -> float | None:
        learned = windows.learned("local")
        return None if learned is None else learned[0].hold_s

    refused()
    assert held_for() == FORGET_S
    # Told again while it holds: the same hold, from now.
    clock.advance(FORGET_S / 2)
    refused()
    assert held_for() == FORGET_S
    clock.advance(FORGET_S)
    assert held_for() is None
    # Given its chance back, it fails at once: twice as long, then again...
    refused()
    assert held_for() == 2 * FORGET_S
    for hold in (4 * FORGET_S, 8 * FORGET_S, 16 * FORGET_S, MAX_HOLD_S, MAX_HOLD_S):
        clock.advance(held_for() or 0)
        assert windows.limits({}) == {}
        refused()
        assert held_for() == hold
    # ...but one failing long after its chance came back starts over.
    clock.advance(MAX_HOLD_S + FORGET_S)
    assert windows.limits({}) == {}
    refused()
    assert held_for() == FORGET_S


def test_forget_drops_what_was_learned_and_its_history() -> None:
    clock = ManualClock()
    told: list[tuple[str, dict[str, object]]] = []
    windows = LearnedWindows(clock, audit=lambda event, **f: told.append((event, f)))
    windows.take([summary(too_long("local", 40_960, 32_768))])
    assert windows.forget("local", via="manual", uid=1000) is True
    assert windows.limits({}) == {} and windows.forget("local", via="manual") is False
    assert told == [
        ("provider.window_forgotten", {"provider": "local", "via": "manual", "uid": 1000})
    ]
    # No history: learned again at once, it holds the first time's length.
    windows.take([summary(too_long("local", 40_960, 32_768))])
    learned = windows.learned("local")
    assert learned is not None and learned[0].hold_s == FORGET_S


def test_a_restarted_daemon_holds_a_limit_as_long_as_it_did() -> None:
    clock = SkewedClock()
    wall = clock.wall()

    def hold(provider: str, ago: float, hold_s: float) -> Held:
        return Held(provider=provider, ts=wall - ago, limit=9000, hold_s=hold_s, window=8192)

    windows = LearnedWindows(clock)
    windows.load(
        recent(
            # Refused again since its long hold began: held as long, from then.
            Overflow(provider="local", ts=wall - 300, prompt_estimate=50_000),
            held=[
                hold("local", 1000, 4 * FORGET_S),
                hold("ollama", 500, 2 * FORGET_S),  # forgotten since (ctl restore)
                hold("vllm", 3000, 2 * FORGET_S),  # over
                hold("lmstudio", 100, 2 * FORGET_S),
            ],
            forgotten={"ollama": wall - 400},
        )
    )
    local = windows.learned("local")
    assert local is not None and local[0].hold_s == 4 * FORGET_S and local[1] == 300
    lmstudio = windows.learned("lmstudio")
    assert lmstudio is not None and lmstudio[0].limit == 9000 and lmstudio[1] == 100
    assert windows.learned("ollama") is None and windows.learned("vllm") is None
    clock.advance(2 * FORGET_S - 100)
    assert windows.learned("lmstudio") is None and windows.learned("local") is not None


def test_a_longer_hold_is_told_when_it_begins() -> None:
    clock = ManualClock()
    held: list[tuple[str, dict[str, object]]] = []
    windows = LearnedWindows(clock, audit=lambda event, **f: held.append((event, f)))
    windows.take([summary(too_long("local", 40_960, 32_768))])
    clock.advance(FORGET_S / 2)
    windows.take([summary(too_long("local", 40_960, 32_768))])  # the same hold, renewed
    assert held == []
    clock.advance(FORGET_S + 1)
    windows.take([summary(too_long("local", 40_960, 32_768))])
    assert held == [
        ("provider.window_held", {"provider": "local", "limit": 40_000,
                                  "hold_s": 2 * FORGET_S, "window": 32_768, "cut": False})
    ]  # fmt: skip


def recent(
    *overflows: Overflow, held: list[Held] | None = None, forgotten: dict[str, float] | None = None
) -> Recent:
    return Recent(overflows=list(overflows), held=held or [], forgotten=forgotten or {})


def test_a_prompt_read_whole_after_the_hold_ended_forgets_nothing_more() -> None:
    clock = ManualClock()
    told: list[tuple[str, dict[str, object]]] = []
    windows = LearnedWindows(clock, audit=lambda event, **f: told.append((event, f)))
    windows.take([summary(too_long("local", 40_960, 32_768))])
    clock.advance(FORGET_S)
    read = Usage(input_tokens=44_000, output_tokens=5)
    windows.take([msgspec.structs.replace(summary(estimate=45_000), provider="local", usage=read)])
    # Nothing held was forgotten (nothing is said), so a failure now is one
    # soon after its chance came back: held twice as long.
    assert told == []
    windows.take([summary(too_long("local", 40_960, 32_768))])
    learned = windows.learned("local")
    assert learned is not None and learned[0].hold_s == 2 * FORGET_S
