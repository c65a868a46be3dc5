"""systemd/coderouterd.service agrees with where the daemon keeps its control socket."""

from __future__ import annotations

import re
from pathlib import Path

from coderouterd.config import default_config, resolve_control_socket, resolve_state_dir

UNIT = Path(__file__).parents[2] / "systemd" / "coderouterd.service"
HOME = Path("/home/u")
# What systemd gives a user unit: XDG_RUNTIME_DIR, and no XDG_STATE_HOME of its own.
UNIT_ENV = {"HOME": str(HOME), "XDG_RUNTIME_DIR": "/run/user/1000"}


def settings(text: str, key: str) -> list[str]:
    """The values of the unit's `key=` lines, `%h` read as HOME."""
    found = re.findall(rf"^{key}=(.*)$", text, flags=re.MULTILINE)
    return [value.replace("%h", str(HOME)) for value in found]


def test_the_unit_says_where_the_control_socket_is_and_asks_for_nothing_unused() -> None:
    # The unit runs `coderouterd serve` without --config: the built-in paths apply.
    text = UNIT.read_text()
    state = resolve_state_dir(default_config(), env=UNIT_ENV, platform="linux", home=HOME)
    socket = resolve_control_socket(default_config(), env=UNIT_ENV, platform="linux", home=HOME)
    assert socket == state / "control.sock"
    assert "<state_dir>/control.sock" in text
    assert "XDG_RUNTIME_DIR/coderouterd" not in text
    # The socket's directory is the one the unit creates and lets the daemon write.
    assert f"+/bin/mkdir -p {state}" in settings(text, "ExecStartPre")
    assert f"-{state}" in settings(text, "ReadWritePaths")
    # Nothing the daemon writes lives in $XDG_RUNTIME_DIR/coderouterd.
    assert settings(text, "RuntimeDirectory") == []
    assert settings(text, "RuntimeDirectoryMode") == []
