"""What a reload leaves in force for the requests that outlive it, and what
it cannot apply.

A request keeps the plan, and so the ProviderConfig, it began with; what it
spends and whether it may still spend are settled by the config in force
when that happens: its prices when it finishes (the request log, the
month's budget, /metrics), its budget when an attempt starts (a budget a
reload lowered to 0 stops a request that was waiting for a slot). For a
provider a reload took out while requests ran on it, that is its last
config: they are billed all the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from coderouterd.config.model import Config, ProviderConfig, ServerConfig

# Server settings bound at start-up: a reload reports a change to them
# instead of applying it.
_RESTART_ONLY = ("host", "port", "state_dir", "control_socket", "max_body_bytes")


class ProviderConfigs:
    def __init__(self, config: Config) -> None:
        self._by_name: dict[str, ProviderConfig] = {p.name: p for p in config.providers}

    def get(self, name: str) -> ProviderConfig | None:
        """The provider's config now, or its last one if a reload took it out."""
        return self._by_name.get(name)

    def swap(self, config: Config) -> Mapping[str, ProviderConfig]:
        """Take a reload's config; return each provider's config before it
        (the last one of a provider an earlier reload took out)."""
        before = self._by_name
        self._by_name = {**before, **{p.name: p for p in config.providers}}
        return before


def restart_required(started: ServerConfig, new: ServerConfig) -> tuple[str, ...]:
    """The server settings `new` changes from those the daemon started
    with: only a restart applies them."""
    return tuple(f"server.{k}" for k in _RESTART_ONLY if getattr(new, k) != getattr(started, k))
