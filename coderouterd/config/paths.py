"""Where the config file, the state directory and the control socket live.

Pure: the environment, the platform and the home directory are arguments
(defaulting to the process's own) so that every combination can be tested.
XDG variables win on every platform, as the XDG spec asks; they are ignored
when empty or relative, as it also asks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from coderouterd.config.model import Config

APP_NAME = "coderouterd"
CONFIG_ENV = "CODEROUTERD_CONFIG"
CONFIG_FILE = "config.yaml"
CONTROL_SOCKET = "control.sock"


def default_state_dir(
    env: Mapping[str, str] = os.environ, platform: str = sys.platform, home: Path | None = None
) -> Path:
    home = home or Path.home()
    if xdg := _xdg(env, "XDG_STATE_HOME"):
        return xdg / APP_NAME
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME
    return home / ".local" / "state" / APP_NAME


def default_config_path(
    env: Mapping[str, str] = os.environ, platform: str = sys.platform, home: Path | None = None
) -> Path:
    """The file to read when none is named; it may not exist."""
    home = home or Path.home()
    if (named := named_config_path(env, home)) is not None:
        return named
    if xdg := _xdg(env, "XDG_CONFIG_HOME"):
        return xdg / APP_NAME / CONFIG_FILE
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME / CONFIG_FILE
    return home / ".config" / APP_NAME / CONFIG_FILE


def named_config_path(env: Mapping[str, str] = os.environ, home: Path | None = None) -> Path | None:
    """$CODEROUTERD_CONFIG, which must then exist; None when it is unset or empty."""
    explicit = env.get(CONFIG_ENV)
    return expand_home(explicit, home or Path.home()) if explicit else None


def resolve_state_dir(
    config: Config,
    env: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    home: Path | None = None,
) -> Path:
    home = home or Path.home()
    if config.server.state_dir:
        return expand_home(config.server.state_dir, home)
    return default_state_dir(env, platform, home)


def resolve_control_socket(
    config: Config,
    env: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    home: Path | None = None,
) -> Path:
    home = home or Path.home()
    if config.server.control_socket:
        return expand_home(config.server.control_socket, home)
    return resolve_state_dir(config, env, platform, home) / CONTROL_SOCKET


def beside_config(named: str, config_file: str, home: Path | None = None) -> Path:
    """A file the config names: `~` expanded, a relative path read next to the config file."""
    path = expand_home(named, home or Path.home())
    return path if path.is_absolute() else Path(config_file).absolute().parent / path


def expand_home(path: str, home: Path) -> Path:
    """`~` and `~/…` against `home`; Path.expanduser would read the real environment."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return home / path[2:]
    return Path(path)


def _xdg(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "")
    return Path(value) if value and os.path.isabs(value) else None
