"""Where the config file, the state directory and the control socket live."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderouterd.config import (
    Config,
    ProfileConfig,
    ProviderConfig,
    ServerConfig,
    default_config_path,
    default_state_dir,
    resolve_control_socket,
    resolve_state_dir,
)

HOME = Path("/home/ada")
MAC_SUPPORT = HOME / "Library" / "Application Support" / "coderouterd"


def config_with(server: ServerConfig) -> Config:
    provider = ProviderConfig(name="local", base_url="http://127.0.0.1:8080/v1", model="m")
    profile = ProfileConfig(name="main", providers=("local",))
    return Config(providers=(provider,), profiles=(profile,), server=server)


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({}, "linux", HOME / ".local/state/coderouterd"),
        ({}, "darwin", MAC_SUPPORT),
        ({}, "freebsd14", HOME / ".local/state/coderouterd"),
        ({"XDG_STATE_HOME": "/var/xdg"}, "linux", Path("/var/xdg/coderouterd")),
        ({"XDG_STATE_HOME": "/var/xdg"}, "darwin", Path("/var/xdg/coderouterd")),
        ({"XDG_STATE_HOME": ""}, "linux", HOME / ".local/state/coderouterd"),
        ({"XDG_STATE_HOME": "relative"}, "linux", HOME / ".local/state/coderouterd"),
    ],
)
def test_default_state_dir(env: dict[str, str], platform: str, expected: Path) -> None:
    assert default_state_dir(env, platform, HOME) == expected


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({}, "linux", HOME / ".config/coderouterd/config.yaml"),
        ({}, "darwin", MAC_SUPPORT / "config.yaml"),
        ({"XDG_CONFIG_HOME": "/etc/xdg"}, "linux", Path("/etc/xdg/coderouterd/config.yaml")),
        ({"XDG_CONFIG_HOME": "/etc/xdg"}, "darwin", Path("/etc/xdg/coderouterd/config.yaml")),
        ({"XDG_CONFIG_HOME": "rel"}, "linux", HOME / ".config/coderouterd/config.yaml"),
        ({"CODEROUTERD_CONFIG": "/srv/router.yaml"}, "linux", Path("/srv/router.yaml")),
        ({"CODEROUTERD_CONFIG": "~/router.yaml"}, "darwin", HOME / "router.yaml"),
        ({"CODEROUTERD_CONFIG": "router.yaml"}, "linux", Path("router.yaml")),
        (
            {"CODEROUTERD_CONFIG": "/srv/router.yaml", "XDG_CONFIG_HOME": "/etc/xdg"},
            "linux",
            Path("/srv/router.yaml"),
        ),
        ({"CODEROUTERD_CONFIG": ""}, "linux", HOME / ".config/coderouterd/config.yaml"),
    ],
)
def test_default_config_path(env: dict[str, str], platform: str, expected: Path) -> None:
    assert default_config_path(env, platform, HOME) == expected


@pytest.mark.parametrize(
    ("server", "env", "state_dir", "socket"),
    [
        (
            ServerConfig(),
            {},
            HOME / ".local/state/coderouterd",
            HOME / ".local/state/coderouterd/control.sock",
        ),
        (
            ServerConfig(),
            {"XDG_STATE_HOME": "/run/xdg"},
            Path("/run/xdg/coderouterd"),
            Path("/run/xdg/coderouterd/control.sock"),
        ),
        (
            ServerConfig(state_dir="~/router"),
            {"XDG_STATE_HOME": "/run/xdg"},
            HOME / "router",
            HOME / "router/control.sock",
        ),
        (
            ServerConfig(state_dir="/var/lib/router", control_socket="~/ctl.sock"),
            {},
            Path("/var/lib/router"),
            HOME / "ctl.sock",
        ),
        (
            ServerConfig(control_socket="/run/router.sock"),
            {},
            HOME / ".local/state/coderouterd",
            Path("/run/router.sock"),
        ),
    ],
)
def test_state_dir_and_control_socket_follow_the_server_section(
    server: ServerConfig, env: dict[str, str], state_dir: Path, socket: Path
) -> None:
    config = config_with(server)

    assert resolve_state_dir(config, env, "linux", HOME) == state_dir
    assert resolve_control_socket(config, env, "linux", HOME) == socket


def test_the_defaults_read_the_real_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/srv/xdg-state")
    monkeypatch.setenv("CODEROUTERD_CONFIG", "/srv/env-router.yaml")

    assert default_state_dir() == Path("/srv/xdg-state/coderouterd")
    assert default_config_path() == Path("/srv/env-router.yaml")
