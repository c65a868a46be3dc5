"""The control API: a small aiohttp app served on a private unix socket.

Only the daemon's own user may connect: the socket is bound under a umask
that leaves it 0600 from the first instant. Its directory is made 0700 when
created here (the state directory, the default one, is made so by the
daemon); one the config names that others may open is warned of, not
changed: it may be /tmp or a home directory. The peer's uid (SO_PEERCRED,
Linux only) is handed to `on_action` so the daemon can audit who asked for
what.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiohttp import web

from coderouterd.ctl.model import ProviderActionReply, ReloadReply, StatusReply
from coderouterd.errors import CoderouterError
from coderouterd.owner_only import private_dir
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger

OnAction = Callable[[str, int | None], None]
# (action, provider, peer uid): `exclude`, `restore` or `probe`; audits itself.
ProviderAction = Callable[[str, str, int | None], Awaitable[ProviderActionReply]]
PROVIDER_ACTIONS = ("exclude", "restore", "probe")

# Only actions that change the daemon are audited; status is a read that
# monitoring polls every few seconds and would drown the audit log.
ACTION_RELOAD = "reload"

# struct ucred {pid_t pid; uid_t uid; gid_t gid;}
_UCRED = struct.Struct("3i")
_ENCODER = msgspec.json.Encoder()
# Long enough for a busy daemon to accept, short enough not to stall startup.
_PROBE_TIMEOUT_S = 1.0


class CtlSocketError(CoderouterError):
    """The control socket cannot be served at its path; startup should stop here."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot serve the control socket at {path}: {reason}")


def _ignore_action(action: str, uid: int | None) -> None:
    pass


@dataclass(frozen=True, slots=True)
class _Actions:
    status: Callable[[], StatusReply]
    reload: Callable[[], Awaitable[ReloadReply]]
    on_action: OnAction
    provider_action: ProviderAction | None


_ACTIONS = web.AppKey("ctl_actions", _Actions)


def build_ctl_app(
    *,
    status: Callable[[], StatusReply],
    reload: Callable[[], Awaitable[ReloadReply]],
    on_action: OnAction | None = None,
    provider_action: ProviderAction | None = None,
) -> web.Application:
    app = web.Application()
    app[_ACTIONS] = _Actions(
        status=status,
        reload=reload,
        on_action=on_action or _ignore_action,
        provider_action=provider_action,
    )
    app.router.add_get("/v1/status", _handle_status)
    app.router.add_post("/v1/reload", _handle_reload)
    app.router.add_post("/v1/providers/{name}/{action}", _handle_provider_action)
    return app


async def _handle_status(request: web.Request) -> web.Response:
    return _json_response(request.app[_ACTIONS].status())


async def _handle_reload(request: web.Request) -> web.Response:
    actions = request.app[_ACTIONS]
    # Recorded before the reload runs so a reload that crashes is still audited.
    actions.on_action(ACTION_RELOAD, peer_uid(request))
    reply = await actions.reload()
    return _json_response(reply, status=200 if reply.ok else 422)


async def _handle_provider_action(request: web.Request) -> web.Response:
    handler = request.app[_ACTIONS].provider_action
    action, name = request.match_info["action"], request.match_info["name"]
    if handler is None or action not in PROVIDER_ACTIONS:
        raise web.HTTPNotFound()
    reply = await handler(action, name, peer_uid(request))
    return _json_response(reply, status=200 if reply.ok else 404)


def _json_response(reply: msgspec.Struct, *, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(reply), status=status, content_type="application/json")


def peer_uid(request: web.BaseRequest) -> int | None:
    """The connecting process's uid, or None where the platform cannot tell us."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    transport = request.transport
    if peercred is None or transport is None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, peercred, _UCRED.size)
    except OSError:
        return None
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)


async def start_ctl_site(runner: web.AppRunner, path: Path) -> web.SockSite:
    """Bind the control socket at `path` (0600, parent 0700) and start serving it.

    A SockSite rather than a UnixSite: UnixSite binds inside the event loop
    and yields before returning, so a umask set around it would leak to
    other coroutines and threads. Binding here is synchronous and brief.
    """
    _make_private_parent(path)
    await _clear_stale_socket(path)
    sock = _bind_private(path)
    site = web.SockSite(runner, sock)
    try:
        await site.start()
    except BaseException:
        sock.close()
        with contextlib.suppress(CtlSocketError):
            _remove_socket(path)
        raise
    return site


async def stop_ctl_site(site: web.BaseSite, path: Path) -> None:
    """Stop serving and remove the socket file, so clients see "not running" at once."""
    await site.stop()
    # Shutdown goes on whatever is at the path now; a connection is refused all the same.
    with contextlib.suppress(CtlSocketError):
        _remove_socket(path)


async def _clear_stale_socket(path: Path) -> None:
    if not _socket_exists(path):
        return
    if await _answers(path):
        raise CtlSocketError(path, "another coderouterd is answering on it")
    _remove_socket(path)


async def _answers(path: Path) -> bool:
    """Whether a live server accepts connections on the socket at `path`."""
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path)), _PROBE_TIMEOUT_S
        )
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except TimeoutError:
        # Someone holds it and is too busy to accept: not ours to delete.
        return True
    except PermissionError as exc:
        raise CtlSocketError(path, "permission denied (owned by another user?)") from exc
    except OSError as exc:
        raise CtlSocketError(path, exc.strerror or str(exc)) from exc
    writer.close()
    await writer.wait_closed()
    return True


def _make_private_parent(path: Path) -> None:
    try:
        open_to_others = private_dir(path.parent, tighten=False)
    except OSError as exc:
        # A file in the way, a read-only path (the unit's ProtectSystem=strict).
        reason = f"cannot create its directory {path.parent}: {exc.strerror or exc}"
        raise CtlSocketError(path, reason) from exc
    if open_to_others is not None:
        get_logger().warning(
            events.CTL_SOCKET_DIR_NOT_PRIVATE, directory=str(path.parent), reason=open_to_others
        )


def _bind_private(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The umask is process-wide; nothing else runs between these two calls.
        previous = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CtlSocketError(path, "another process bound it first") from exc
        raise CtlSocketError(path, exc.strerror or str(exc)) from exc
    return sock


def _socket_exists(path: Path) -> bool:
    """Whether a socket file is at `path`; anything else there is refused, never deleted."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CtlSocketError(path, exc.strerror or str(exc)) from exc
    if not stat.S_ISSOCK(mode):
        raise CtlSocketError(path, "something that is not a socket is in the way")
    return True


def _remove_socket(path: Path) -> None:
    """Remove the socket file at `path`; anything else there is not ours, and stays."""
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CtlSocketError(path, f"cannot remove the socket: {exc.strerror or exc}") from exc
