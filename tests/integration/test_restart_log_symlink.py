"""The restart log, `<state_dir>/restart/<provider>.log`, is emptied and
written at each run: whoever may write the state directory (another user's
is left as is) could put a link there to any file of the daemon's user.
Neither a symbolic link (at the file or at the directory) nor a hard link
is written through: the command runs all the same, its output not kept,
and the tail its audit event carries says why."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from coderouterd.healing.restart import RestartOutcome, restart_log_dir, run_restart

pytestmark = pytest.mark.timeout(20)

PRECIOUS = "important settings\n"


async def restart(log_path: Path) -> RestartOutcome:
    return await run_restart(
        ["sh", "-c", "echo restarted"],
        provider="ollama",
        timeout_s=10,
        output_bytes=1024,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        log_path=log_path,
    )


def precious_file(tmp_path: Path) -> Path:
    victim = tmp_path / "precious.conf"
    victim.write_text(PRECIOUS)
    victim.chmod(0o644)
    return victim


def assert_untouched(victim: Path) -> None:
    assert victim.read_text() == PRECIOUS, "the link's target was written"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


async def test_a_symbolic_link_at_the_log_is_not_followed(tmp_path: Path) -> None:
    victim = precious_file(tmp_path)
    logs = restart_log_dir(tmp_path / "state")
    logs.mkdir(parents=True)
    (logs / "ollama.log").symlink_to(victim)
    outcome = await restart(logs / "ollama.log")
    assert outcome.exit_status == 0
    assert_untouched(victim)
    assert outcome.output_tail == (
        f"(output not kept: cannot open {logs}/ollama.log: a symbolic link, not followed)"
    )
    assert (logs / "ollama.log").is_symlink()


async def test_a_symbolic_link_in_place_of_the_log_directory_is_not_followed(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = precious_file(elsewhere)
    victim.rename(elsewhere / "ollama.log")
    victim = elsewhere / "ollama.log"
    state = tmp_path / "state"
    state.mkdir()
    restart_log_dir(state).symlink_to(elsewhere)
    outcome = await restart(restart_log_dir(state) / "ollama.log")
    assert outcome.exit_status == 0
    assert_untouched(victim)
    assert "a symbolic link, not followed" in outcome.output_tail


async def test_a_hard_link_at_the_log_is_left_as_is(tmp_path: Path) -> None:
    victim = precious_file(tmp_path)
    logs = restart_log_dir(tmp_path / "state")
    logs.mkdir(parents=True)
    (logs / "ollama.log").hardlink_to(victim)
    outcome = await restart(logs / "ollama.log")
    assert outcome.exit_status == 0
    assert_untouched(victim)
    assert "not a plain file of its own" in outcome.output_tail


async def test_an_existing_log_directory_others_may_open_is_made_private(tmp_path: Path) -> None:
    logs = restart_log_dir(tmp_path / "state")
    logs.mkdir(parents=True)
    logs.chmod(0o755)
    outcome = await restart(logs / "ollama.log")
    assert (outcome.ok, outcome.output_tail) == (True, "restarted\n")
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert stat.S_IMODE((logs / "ollama.log").stat().st_mode) == 0o600
