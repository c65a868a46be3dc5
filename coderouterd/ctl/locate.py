"""Where `coderouterd ctl` finds the running daemon's control socket.

Only `server.control_socket` and `server.state_dir` are read from the config
file, and nothing else in it is checked: a file half-way through an edit, or
with a problem, must not keep the command line from the daemon that runs
fine on the one before (`ctl reload` of such a file is the daemon's to
reject, with every problem). A file whose YAML is broken is read around: its
top-level `server:` block is parsed on its own (the first one: the daemon's
loader refuses a key written twice, at the second), and where the error lies in
that block, the block's lines before it. Whatever cannot be read so names
neither: the defaults stand.
"""

from __future__ import annotations

import os
import re
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
# The `server` key at the first column, plain or quoted, then a block or flow value.
_SERVER_KEY = re.compile(r"""server[ \t]*:(?:\s|$)|(["'])server\1[ \t]*:""")
# Errors inside the server block are read around, each time in the lines before.
_TRIES = 20


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
    """The YAML document, or, where it cannot be read, one of its `server:` block alone."""
    try:
        return YAML(typ="safe").load(text)
    except Exception:  # any error at all: the server block may still be whole
        return _server_document(text)


def _server_document(text: str) -> object:
    """The document the top-level `server:` block makes, or the lines of it
    before its first syntax error make."""
    lines = _server_block(text.splitlines(keepends=True))
    for _ in range(_TRIES):
        try:
            return YAML(typ="safe").load("".join(lines))
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            # Never the same text twice: at least the last line goes.
            lines = lines[: min(mark.line if mark is not None else 0, len(lines) - 1)]
        except Exception:  # whatever else stops the parser: the defaults stand
            return None
    return None


def _server_block(lines: list[str]) -> list[str]:
    """The first top-level `server:` line and the indented, blank and comment
    lines after it, up to the next line at the first column ([] if none)."""
    start = next((i for i, line in enumerate(lines) if _SERVER_KEY.match(line)), None)
    if start is None:
        return []
    end = start + 1
    while end < len(lines) and not _top_level(lines[end]):
        end += 1
    return lines[start:end]


def _top_level(line: str) -> bool:
    return line[:1] not in ("", " ", "\t", "\r", "\n", "#")
