"""Typed keys for what the composition root puts on the app and the request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from coderouterd.daemon import Daemon
    from coderouterd.ingress.middleware import RequestIds

DAEMON: web.AppKey[Daemon] = web.AppKey("daemon")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
REQUEST_IDS: web.AppKey[RequestIds] = web.AppKey("request_ids")
# Set when the request's body was left unread: its answer closes the connection.
BODY_ABANDONED: web.RequestKey[bool] = web.RequestKey("body_abandoned", bool)
