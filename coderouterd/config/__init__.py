"""The config file: Structs, loading with file:line problems, defaults and paths."""

from coderouterd.config.default import DEFAULT_CONFIG_YAML, default_config
from coderouterd.config.load import (
    LoadedConfig,
    config_digest,
    load_config,
    load_config_text,
    load_default_config,
)
from coderouterd.config.model import (
    Config,
    ProfileConfig,
    ProviderConfig,
    ProviderKind,
    ServerConfig,
    TimeoutsConfig,
)
from coderouterd.config.paths import (
    default_config_path,
    default_state_dir,
    resolve_control_socket,
    resolve_state_dir,
)

__all__ = [
    "DEFAULT_CONFIG_YAML",
    "Config",
    "LoadedConfig",
    "ProfileConfig",
    "ProviderConfig",
    "ProviderKind",
    "ServerConfig",
    "TimeoutsConfig",
    "config_digest",
    "default_config",
    "default_config_path",
    "default_state_dir",
    "load_config",
    "load_config_text",
    "load_default_config",
    "resolve_control_socket",
    "resolve_state_dir",
]
