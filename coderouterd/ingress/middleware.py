"""Request id, error mapping and the body-size cap, for every route."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterable

import structlog
from aiohttp import web

from coderouterd.errors import BodyTooLargeError, CoderouterError
from coderouterd.ingress.errors import error_response
from coderouterd.ingress.keys import BODY_ABANDONED, DAEMON, REQUEST_ID, REQUEST_IDS
from coderouterd.lru import SizedLRU
from coderouterd.state.reads import CLIENT_IDS_KEPT
from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger
from coderouterd.wire.errors import error_body

REQUEST_ID_HEADER = "x-request-id"

# An id from the client is kept only if it is safe to echo in headers and logs.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SHUTTING_DOWN = "coderouterd is shutting down; send the request again"

_log = get_logger()


# Generated ids: a random prefix per process and a counter, unique across
# restarts (they key the request log) and cheaper than a uuid4 per request.
_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count()


def request_id_of(header: str | None) -> str:
    if header and _VALID_ID.match(header):
        return header
    return _generated()


_GENERATED = f"req_{_ID_PREFIX}"
# Any process's generated id, this one's or one before a restart (whose
# prefix differs): none is a client's own, and each names a request already.
_GENERATED_SHAPE = re.compile(r"req_[0-9a-f]{24}")


def _generated() -> str:
    return f"{_GENERATED}{next(_id_counter):012x}"


class RequestIds:
    """Each request's id: the client's x-request-id when it is safe to echo and
    no recent request used it, else a generated one. The request log keys on
    the id, so a client that retries with the same x-request-id gets a new one
    for the retry, which the response header tells it. `seen`: the ids
    clients chose before a restart (the request log's latest), oldest first."""

    def __init__(self, remember: int = CLIENT_IDS_KEPT, seen: Iterable[str] = ()) -> None:
        self._recent: SizedLRU[str, None] = SizedLRU(remember, remember, lambda _: 0)
        for rid in seen:
            self._recent.put(rid, None)

    def assign(self, header: str | None) -> str:
        rid = request_id_of(header)
        if rid != header:
            return rid
        # A generated id sent back (a client that echoes the x-request-id it
        # got): it names a request already, maybe one in flight.
        if rid in self._recent or _GENERATED_SHAPE.fullmatch(rid):
            return _generated()
        self._recent.put(rid, None)
        return rid


# Paths only OpenAI clients call (ours or not: an OpenAI SDK asking for a
# route coderouterd lacks gets its 404 in the envelope it reads).
_OPENAI_PATHS = re.compile(r"/(chat|completions|responses|embeddings)(/|$)")


def dialect_of(path: str) -> str:
    """Which error envelope a route's clients understand; Anthropic's unless
    the path is one only OpenAI clients call."""
    return "openai" if _OPENAI_PATHS.search(path) else "anthropic"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.app[REQUEST_IDS].assign(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = rid
    dialect = dialect_of(request.path)
    structlog.contextvars.bind_contextvars(request_id=rid)
    daemon = request.app[DAEMON]
    resp: web.StreamResponse
    try:
        try:
            if daemon.stopping:
                resp = plain_error(dialect, 503, SHUTTING_DOWN, rid)
            else:
                resp = await handler(request)
        except web.HTTPRequestEntityTooLarge as exc:
            limit = daemon.max_body_bytes
            message = f"request body is larger than the limit of {limit} bytes ({exc.text})"
            resp = error_response(dialect, BodyTooLargeError(message, field="body"), rid)
        except CoderouterError as exc:
            resp = error_response(dialect, exc, rid)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = plain_error(dialect, exc.status, exc.reason, rid)
            resp.headers.update({k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        except Exception:
            # A defect of ours: the client still gets an answer it can read,
            # and the log the traceback. A response already begun (a
            # stream) cannot be answered again: aiohttp closes it.
            if request.writer.output_size > 0:
                raise
            _log.exception(events.REQUEST_UNHANDLED, path=request.path)
            resp = plain_error(dialect, 500, "internal error in coderouterd", rid)
        if not resp.prepared:
            resp.headers[REQUEST_ID_HEADER] = rid
        if daemon.stopping or request.get(BODY_ABANDONED, False):
            # Every answer closes its connection now, one its handler began
            # sending before the shutdown too (its headers did not say so);
            # so does one to a request whose body was left unread.
            resp.force_close()
        return resp
    finally:
        structlog.contextvars.unbind_contextvars("request_id")


def close_if_stopping(request: web.Request, resp: web.StreamResponse) -> None:
    """Have `resp`, about to be sent from within its handler, say `Connection:
    close` once the shutdown has begun, as every answer then does: a client
    must not send its next request on a connection about to go."""
    if request.app[DAEMON].stopping:
        resp.force_close()


def plain_error(dialect: str, status: int, message: str, rid: str) -> web.Response:
    """An error of ours that is no CoderouterError, in the route's envelope."""
    extra = {"request_id": rid} if dialect == "anthropic" else {}
    return web.Response(
        status=status,
        body=error_body(dialect, status, message, **extra),
        content_type="application/json",
    )
