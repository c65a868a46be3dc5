"""Which backend each provider talks to, and which providers a reload moved (pure).

A provider's backend is its `model` at its `base_url`. A reload that changes
either points the provider at another model or another server, and what the
old one did says nothing of the new one: drift's window, a window the old
model refused a prompt by, a streak of failures. Requests still running on
the old backend when the reload comes are told apart by the model their
attempts name (`AttemptRecord.model`); an attempt does not name its server.
"""

from __future__ import annotations

from collections.abc import Mapping

from coderouterd.config.model import Config

# (model, base_url)
Backend = tuple[str, str]


def backends_of(config: Config) -> dict[str, Backend]:
    return {p.name: (p.model, p.base_url) for p in config.providers}


def moved(before: Mapping[str, Backend], after: Mapping[str, Backend]) -> frozenset[str]:
    """Providers configured before and after whose backend differs."""
    return frozenset(n for n, b in before.items() if after.get(n, b) != b)


def sent_elsewhere(sent: str | None, configured: str | None) -> bool:
    """Whether an attempt sent to the model `sent` went to another model than
    the `configured` one. One that names no model (a record or a request log
    row from before attempts kept it) counts as sent to it."""
    return sent is not None and configured is not None and sent != configured
