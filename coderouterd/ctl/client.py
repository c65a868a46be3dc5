"""Talks to a running daemon over its control socket; used by `coderouterd ctl`.

Every way of not getting a usable answer becomes one CtlUnavailableError,
so the command line has a single thing to catch and print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from coderouterd.config.model import Name
from coderouterd.ctl.model import ProviderActionReply, ReloadReply, StatusReply
from coderouterd.errors import CoderouterError

Reason = Literal["missing", "refused", "denied", "timeout", "bad_reply"]

_MESSAGES: dict[Reason, str] = {
    "missing": "coderouterd is not running (no control socket at {path})",
    "refused": "coderouterd is not running (the control socket at {path} refuses connections)",
    "denied": "cannot reach coderouterd: permission denied on {path}",
    "timeout": "coderouterd did not answer on {path} in time",
    "bad_reply": "coderouterd gave an unexpected reply on {path}",
}

# The host is never resolved; the socket path decides where the request goes.
_BASE_URL = "http://coderouterd"

_STATUS_DECODER = msgspec.json.Decoder(StatusReply)
_RELOAD_DECODER = msgspec.json.Decoder(ReloadReply)
_ACTION_DECODER = msgspec.json.Decoder(ProviderActionReply)

R = TypeVar("R")

# `ctl probe`: the daemon waits up to probe_timeout_s for a free slot and as
# long for the probe; the margin covers the round trip on the socket.
_PROBE_MARGIN_S = 5.0
# Waited for at least that long, so that a daemon started with a longer
# probe_timeout_s than the config the command line reads is waited for too.
_PROBE_WAIT_MIN_S = 60.0


class CtlUnavailableError(CoderouterError):
    """No usable answer came back from the control socket at `path`."""

    def __init__(self, path: Path, reason: Reason, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        message = _MESSAGES[reason].format(path=path)
        super().__init__(f"{message}: {detail}" if detail else message)


# ASYNC109: one deadline per call is the whole interface of the ctl command line.
async def fetch_status(path: Path, *, timeout: float = 5.0) -> StatusReply:  # noqa: ASYNC109
    status, body = await _call(path, "GET", "/v1/status", timeout)
    return _decode(path, status, body, _STATUS_DECODER, accept=(200,))


async def request_reload(path: Path, *, timeout: float = 30.0) -> ReloadReply:  # noqa: ASYNC109
    """Ask for a reload; a rejected config comes back as a reply with `ok=False`."""
    status, body = await _call(path, "POST", "/v1/reload", timeout)
    return _decode(path, status, body, _RELOAD_DECODER, accept=(200, 422))


def probe_wait_s(probe_timeout_s: float) -> float:
    """How long `ctl probe` waits for the answer of a daemon whose
    probe_timeout_s is `probe_timeout_s`: the daemon bounds its own side."""
    return max(_PROBE_WAIT_MIN_S, 2 * probe_timeout_s + _PROBE_MARGIN_S)


async def request_provider_action(
    path: Path,
    action: str,
    provider: str,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> ProviderActionReply:
    """`exclude`, `restore` or `probe` one provider; an unknown one comes
    back with `ok=False`. A probe may take longer than the default
    `timeout`: give it `probe_wait_s(...)`."""
    if not _can_be_provider(provider):
        return await _no_provider(path, action, provider, timeout)
    route = f"/v1/providers/{quote(provider, safe='')}/{action}"
    status, body = await _call(path, "POST", route, timeout)
    return _decode(path, status, body, _ACTION_DECODER, accept=(200, 404))


def _can_be_provider(name: str) -> bool:
    """Whether the config's rule for a name lets a provider have `name`. One
    it does not is no provider's, answered without asking for it: a URL path
    cannot carry some (`.` and `..` are resolved away, even escaped; ""
    reaches no route; one too long overflows the daemon's request line)."""
    try:
        msgspec.convert(name, Name)
    except msgspec.ValidationError:
        return False
    return True


async def _no_provider(
    path: Path,
    action: str,
    provider: str,
    timeout: float,  # noqa: ASYNC109
) -> ProviderActionReply:
    """The daemon's answer for a name it has no provider by, with the
    providers it has (asking it also tells whether it is running)."""
    known = ", ".join(p.name for p in (await fetch_status(path, timeout=timeout)).providers)
    message = f"no provider {provider!r} (configured: {known})"
    return ProviderActionReply(ok=False, provider=provider, action=action, message=message)


async def _call(path: Path, method: str, route: str, deadline_s: float) -> tuple[int, bytes]:
    connector = aiohttp.UnixConnector(path=str(path))
    client_timeout = aiohttp.ClientTimeout(total=deadline_s)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session,
            session.request(method, _BASE_URL + route) as response,
        ):
            return response.status, await response.read()
    except aiohttp.ClientConnectorError as exc:
        raise CtlUnavailableError(path, _connect_reason(exc.os_error)) from exc
    except TimeoutError as exc:
        raise CtlUnavailableError(path, "timeout", f"{deadline_s:g} s") from exc
    except aiohttp.ClientError as exc:
        raise CtlUnavailableError(path, "bad_reply", str(exc) or type(exc).__name__) from exc


def _connect_reason(error: OSError) -> Reason:
    if isinstance(error, FileNotFoundError):
        return "missing"
    if isinstance(error, PermissionError):
        return "denied"
    return "refused"


def _decode(
    path: Path,
    status: int,
    body: bytes,
    decoder: msgspec.json.Decoder[R],
    *,
    accept: tuple[int, ...],
) -> R:
    if status not in accept:
        raise CtlUnavailableError(path, "bad_reply", f"HTTP {status}")
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise CtlUnavailableError(path, "bad_reply", str(exc)) from exc
