"""A daemon listening beyond this machine: said once, loudly, at start-up.

The daemon has no authentication: anyone who can reach its port can spend
the API keys it holds.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_non_loopback(log: Any, host: str, event: str) -> None:
    """A warning log line `event`: stderr carries only JSON lines, so log shippers read it too."""
    message = (
        f"coderouterd is listening on {host}, reachable from other machines. "
        "It has no authentication: anyone who can reach it can spend your API keys."
    )
    log.warning(event, host=host, message=message)
