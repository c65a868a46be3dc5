"""Which config file `serve` reads, and which one a reload looks for.

The same answer at start and at every reload: a daemon started on the
built-in default (no file yet) reads the file a later `ctl reload` finds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from coderouterd.config import LoadedConfig, default_config_path, load_config, load_default_config
from coderouterd.config.paths import CONFIG_ENV, named_config_path


def config_file(named: Path | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """`named` (--config), else $CODEROUTERD_CONFIG (which must then exist),
    else the user config path when a file is there; None: the built-in default."""
    if named is not None:
        return named
    fallback = default_config_path(env)
    # A file $CODEROUTERD_CONFIG names must exist; set but empty, it names none.
    # A symlink counts even where it leads nowhere (a dotfiles checkout moved or
    # not mounted): that file is meant, and cannot be read, not absent.
    if os.path.lexists(fallback) or named_config_path(env) is not None:
        return fallback
    return None


def load(
    named: Path | None,
    env: Mapping[str, str] = os.environ,
    *,
    server_overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    path = config_file(named, env)
    if path is None:
        return load_default_config()
    return load_config(path, server_overrides=server_overrides)


def missing_config_file(env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """For a reload of a daemon on the built-in default while there is still
    no file: the file it looked for, and why nothing was reloaded."""
    path = str(default_config_path(env))
    return path, (
        f"{path}: no such file: the daemon runs on the built-in default config and has no "
        "file to re-read; write this one and reload again (a file elsewhere needs a restart "
        f"with --config FILE or ${CONFIG_ENV})"
    )


def with_server_overrides(loaded: LoadedConfig, overrides: Mapping[str, Any]) -> LoadedConfig:
    """`loaded` with the server settings given on the command line (None: not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return loaded
    server = msgspec.structs.replace(loaded.config.server, **given)
    config = msgspec.structs.replace(loaded.config, server=server)
    return msgspec.structs.replace(loaded, config=config)
