from __future__ import annotations

import pytest

from coderouterd.ctl.model import (
    BudgetStatus,
    HealingStatus,
    InFlight,
    MemoryStatus,
    MemoStatus,
    ProviderStatus,
    ReloadReply,
    StateStatus,
    StatusReply,
)
from coderouterd.ctl.render import (
    format_bytes,
    format_duration,
    render_reload,
    render_status,
    render_table,
)

LOCAL = ProviderStatus(
    name="local",
    kind="openai_compat",
    model="qwen2.5-coder:32b",
    base_url="http://127.0.0.1:11434/v1",
    paid=False,
    state="ok",
    last_outcome="completed",
    last_status=200,
    consecutive_failures=0,
)
CLOUD = ProviderStatus(
    name="cloud",
    kind="anthropic",
    model="claude-sonnet-4",
    base_url="https://api.anthropic.com",
    paid=True,
)
STREAMING = InFlight(
    request_id="req_01",
    dialect="anthropic",
    profile="coding",
    provider="local",
    stream=True,
    age_s=3.25,
)
WAITING = InFlight(
    request_id="req_02",
    dialect="openai",
    profile="coding",
    provider=None,
    stream=False,
    age_s=75,
)


def _status(**changes: object) -> StatusReply:
    fields: dict[str, object] = {
        "version": "0.1.0",
        "pid": 4242,
        "uptime_s": 7380.0,
        "listen": "127.0.0.1:8088",
        "config_path": "/home/me/.config/coderouterd/config.yaml",
        "config_digest": "sha256:abc123",
        "default_profile": "coding",
        "providers": (LOCAL, CLOUD),
        "in_flight": (STREAMING, WAITING),
    }
    fields.update(changes)
    return StatusReply(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0.0s"),
        (-3, "0.0s"),
        (3.25, "3.2s"),
        (10, "10s"),
        (59.9, "59s"),
        (60, "1m 00s"),
        (307, "5m 07s"),
        (3600, "1h 00m"),
        (7380, "2h 03m"),
        (86_399, "23h 59m"),
        (86_400, "1d 00h"),
        (3 * 86_400 + 4 * 3600 + 59, "3d 04h"),
    ],
)
def test_format_duration_shows_the_two_largest_units(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_render_status_header_lines() -> None:
    lines = render_status(_status()).splitlines()
    assert lines[:5] == [
        "coderouterd 0.1.0  pid 4242  up 2h 03m",
        "listen           127.0.0.1:8088",
        "config           /home/me/.config/coderouterd/config.yaml",
        "config digest    sha256:abc123",
        "default profile  coding",
    ]


def test_render_status_without_config_file_says_none() -> None:
    assert "config           (none)" in render_status(_status(config_path=None)).splitlines()


def test_render_status_providers_table_is_aligned_with_dashes_for_unknowns() -> None:
    text = render_status(_status(in_flight=()))
    start = text.splitlines().index("providers (2)")
    assert text.splitlines()[start + 1 : start + 4] == [
        "  NAME   KIND           MODEL              STATE    LAST OUTCOME  STATUS  FAILS  REPAIRS  PAID",
        "  local  openai_compat  qwen2.5-coder:32b  ok       completed     200     0      0        no",
        "  cloud  anthropic      claude-sonnet-4    unknown  -             -       0      0        yes",
    ]


def test_render_status_in_flight_table() -> None:
    lines = render_status(_status()).splitlines()
    start = lines.index("in flight (2)")
    assert lines[start + 1 : start + 4] == [
        "  REQUEST  DIALECT    PROFILE  PROVIDER  STREAM  AGE",
        "  req_01   anthropic  coding   local     yes     3.2s",
        "  req_02   openai     coding   -         no      1m 15s",
    ]


def test_render_status_with_nothing_configured_or_running_says_none() -> None:
    lines = render_status(_status(providers=(), in_flight=())).splitlines()
    assert lines[-8:] == [
        "providers (0)",
        "  none",
        "",
        "in flight (0)",
        "  none",
        "",
        "database",
        "  not open (no state is kept)",
    ]


def test_a_rejected_key_shows_in_the_state_column() -> None:
    rejected = ProviderStatus(
        name="cloud",
        kind="anthropic",
        model="m",
        base_url="https://x",
        paid=True,
        state="ok",
        last_status=401,
        auth_rejected=True,
    )
    assert "ok, key rejected" in render_status(_status(providers=(rejected,)))


@pytest.mark.parametrize(
    ("healing", "shown"),
    [
        (HealingStatus(excluded=True, reason="unhealthy", next_probe_in_s=75.0), "probe in 1m 15s"),
        (
            HealingStatus(excluded=True, reason="unhealthy", next_probe_in_s=2, probes_failed=3),
            "probe in 2.0s, 3 probe(s) failed",
        ),
        (HealingStatus(excluded=True, reason="unhealthy", restart_running=True), "restarting"),
    ],
)
def test_an_exclusion_shows_in_the_state_column(healing: HealingStatus, shown: str) -> None:
    excluded = ProviderStatus(
        name="local",
        kind="anthropic",
        model="m",
        base_url="http://x",
        paid=False,
        state="excluded (unhealthy)",
        healing=healing,
    )
    assert f"excluded (unhealthy), {shown}" in render_status(_status(providers=(excluded,)))


def test_render_status_budgets_and_database() -> None:
    budgets = (
        BudgetStatus(
            provider="cloud",
            month="2026-11",
            spent_usd=8.5,
            budget_usd=10.0,
            percent=85.0,
            blocked=False,
        ),
        BudgetStatus(
            provider="local",
            month="2026-11",
            spent_usd=0.0,
            budget_usd=None,
            percent=None,
            blocked=False,
        ),
    )
    state = StateStatus(
        path="/var/lib/coderouterd/coderouterd.db",
        size_bytes=3 * 1024 * 1024 + 512 * 1024,
        queue_depth=2,
        dropped=0,
        failed_rows=0,
        committed_rows=1234,
        last_commit_wall=1795600000.0,
        replays_dropped=1,
        replays_too_large=0,
        replays_orphaned=3,
        requests_renamed=2,
    )
    lines = render_status(_status(budgets=budgets, state=state)).splitlines()
    start = lines.index("spend this month")
    assert lines[start + 1 : start + 4] == [
        "  PROVIDER  MONTH    SPENT USD  BUDGET USD  USED   BLOCKED",
        "  cloud     2026-11  8.5000     10.00       85.0%  no",
        "  local     2026-11  0.0000     -           -      no",
    ]
    assert lines[lines.index("database") + 1 :] == [
        "  path           /var/lib/coderouterd/coderouterd.db",
        "  size           3.5 MB",
        "  last commit    2026-11-25T09:46:40Z",
        "  queue depth    2",
        "  rows written   1234",
        "  rows dropped   0 (queue full)  0 (write failed)",
        "  ids reused     2 (stored with a suffix)",
        "  replays lost   1 (queue full)  0 (over max_record_kb)  "
        "3 (request row, base record or piece missing)",
    ]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (5 * 1024**3, "5.0 GB"),
        (2048 * 1024**3, "2048.0 GB"),
    ],
)
def test_format_bytes(n: int, expected: str) -> None:
    assert format_bytes(n) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            ReloadReply(ok=True, config_digest="sha256:new"),
            "reloaded: config digest sha256:new",
        ),
        (
            ReloadReply(
                ok=True,
                config_digest="sha256:new",
                restart_required=("server.port", "server.state_dir"),
            ),
            "reloaded: config digest sha256:new\n"
            "these settings take effect only after a restart:\n"
            "  - server.port\n"
            "  - server.state_dir",
        ),
        (
            ReloadReply(
                ok=False,
                config_digest="sha256:old",
                problems=(
                    "config.yaml:4: providers[0].base_url: not a URL",
                    "config.yaml:9: profiles[0].providers[1]: unknown provider 'x'",
                ),
            ),
            "reload rejected; still running config digest sha256:old\n"
            "2 problem(s):\n"
            "  - config.yaml:4: providers[0].base_url: not a URL\n"
            "  - config.yaml:9: profiles[0].providers[1]: unknown provider 'x'",
        ),
        (
            ReloadReply(ok=False, config_digest="sha256:old"),
            "reload rejected; still running config digest sha256:old\nno problems were reported",
        ),
    ],
)
def test_render_reload(reply: ReloadReply, expected: str) -> None:
    assert render_reload(reply) == expected


def test_render_table_pads_every_column_but_strips_trailing_blanks() -> None:
    assert render_table(("A", "LONGER"), [("wide cell", "x"), ("y", "")]) == [
        "A          LONGER",
        "wide cell  x",
        "y",
    ]


def test_render_status_memory() -> None:
    memory = MemoryStatus(
        rss_bytes=50 * 1024 * 1024,
        peak_rss_bytes=120 * 1024 * 1024,
        memos=(
            MemoStatus(name="request bodies", conversations=3, bytes=2048),
            MemoStatus(name="replay last records", conversations=1, bytes=0),
        ),
    )
    text = render_status(_status(memory=memory))
    assert text.endswith(
        "memory\n"
        "  resident             50.0 MB (peak 120.0 MB)\n"
        "  request bodies       3 conversations, 2.0 KB\n"
        "  replay last records  1 conversation, 0 B"
    )
    unknown = MemoryStatus(rss_bytes=None, peak_rss_bytes=1024)
    assert "resident  - (peak 1.0 KB)" in render_status(_status(memory=unknown))
