"""The systemd notify protocol (sd_notify(3)) in a few lines of stdlib.

Messages the daemon sends: READY=1 once serving, RELOADING=1 (see
`reloading_state`) then READY=1 around a reload, STOPPING=1 when the grace
period starts, and STATUS=... for `systemctl status`. Outside systemd
NOTIFY_SOCKET is unset and every call is a cheap no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

READY = "READY=1"
STOPPING = "STOPPING=1"


def notify(state: str, *, env: Mapping[str, str] = os.environ) -> bool:
    """Send `state` to the service manager; False when there is none or it cannot be reached.

    Delivery is best effort on purpose: a failed notification must never
    take the daemon down. A missed READY=1 shows up as a start timeout in
    systemd, which is where an operator looks.
    """
    address = _socket_address(env.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def reloading_state(monotonic_usec: int) -> str:
    """RELOADING=1 with the CLOCK_MONOTONIC timestamp newer systemd requires to match it up.

    On Linux `time.monotonic_ns() // 1000` is that clock.
    """
    return f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}"


def status_state(text: str) -> str:
    # STATUS= is one line: a newline would start a new assignment.
    return "STATUS=" + " ".join(text.splitlines())


def _socket_address(raw: str) -> str | None:
    if not raw:
        return None
    if raw.startswith("@"):
        # Abstract namespace: a leading NUL instead of a path on disk.
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # Other schemes (vsock:...) are for VMs; a daemon on a host never gets them.
    return None
