"""Where `coderouterd ctl` finds the running daemon's control socket.

Only `server.control_socket` and `server.state_dir` are read from the config
file, and nothing else in it is checked: a file half-way through an edit, or
with a problem, must not keep the command line from the daemon that runs
fine on the one before (`ctl reload` of such a file is the daemon's to
reject, with every problem). A YAML syntax error is read around: the lines
before it still say where the socket is (the `server:` block usually comes
first). Whatever cannot be read so names neither: the defaults stand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from coderouterd.config import load_default_config, resolve_control_socket
from coderouterd.config.model import ServerConfig
from coderouterd.config_source import config_file
from coderouterd.errors import ConfigError, ConfigProblem

_PLACES = ("control_socket", "state_dir")
# Syntax errors read around, each time in the lines before the last one.
_TRIES = 5


def control_socket(named: Path | None, env: Mapping[str, str] = os.environ) -> Path:
    """The socket of the daemon that runs the config file `serve` would read
    with `--config named` (ConfigError only when that file cannot be read)."""
    path = config_file(named, env)
    places = {} if path is None else _places(path)
    server = ServerConfig(
        state_dir=places.get("state_dir"), control_socket=places.get("control_socket")
    )
    config = msgspec.structs.replace(load_default_config().config, server=server)
    return resolve_control_socket(config, env)


def _places(path: Path) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = f"cannot read file: {exc.strerror or exc}"
        raise ConfigError([ConfigProblem(str(path), None, "", reason)]) from exc
    document = _document(raw.decode("utf-8-sig", errors="replace"))
    server = document.get("server") if isinstance(document, dict) else None
    if not isinstance(server, dict):
        return {}
    return {k: v for k in _PLACES if isinstance(v := server.get(k), str) and v}


def _document(text: str) -> object:
    """The YAML document, or the one the lines before its first syntax error make."""
    for _ in range(_TRIES):
        try:
            return YAML(typ="safe").load(text)
        except MarkedYAMLError as exc:
            marks = (exc.context_mark, exc.problem_mark)
            line = min((m.line for m in marks if m is not None), default=0)
            text = "".join(text.splitlines(keepends=True)[:line])
        except Exception:  # whatever else stops the parser: the defaults stand
            return None
    return None
