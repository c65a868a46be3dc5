"""Request bodies sent in a content coding: gzip and deflate, decoded as they arrive.

The daemon serves with aiohttp's own decoding off: aiohttp answers a coding
it cannot decode (zstd, or br without Brotli) with a text/plain 400 before
any middleware runs, so the client gets no error envelope and no request
id. Decoded here, what a body decodes to is held to server.max_body_bytes
as it grows: a small body that would decode to gigabytes is refused at the
limit, never held whole. A body in no coding is read as aiohttp reads it.
The whole body, in any coding, has server.body_timeout_s to arrive.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import StreamReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from coderouterd.errors import BodyTimeoutError, BodyTooLargeError, InvalidRequestError
from coderouterd.ingress.keys import BODY_ABANDONED, DAEMON
from coderouterd.scrub import clip

# zlib's window bits for each coding: gzip's header and trailer, zlib's.
_GZIP = 16 + zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": zlib.MAX_WBITS}
_IDENTITY = "identity"
# RFC 1950: a zlib stream's first byte names method 8 (deflate) in its low bits.
_ZLIB_METHOD = 8


# Anthropic's codes for the same refusals (errors.RequestError.code).
_UNSUPPORTED = "request_body_encoding_unsupported"
_INVALID = "request_body_encoding_invalid"
_TOO_LARGE_DECODED = "request_body_too_large_after_decoding"


def too_large(limit: int, detail: str, *, decoded: bool = False) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"request body is larger than the limit of {limit} bytes ({detail})",
        field="body",
        code=_TOO_LARGE_DECODED if decoded else None,
    )


def unreadable(detail: str) -> InvalidRequestError:
    return InvalidRequestError(f"cannot be read ({detail})", field="body", code=_INVALID)


def coding_of(header: str) -> str | None:
    """The coding a Content-Encoding header names, None for none (identity);
    one the daemon cannot decode, or more than one, is the client's error."""
    named = (c.strip().lower() for c in header.split(","))
    codings = [c for c in named if c and c != _IDENTITY]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _WBITS:
        raise InvalidRequestError(
            f"content-encoding {clip(header.strip())!r} is not supported: "
            "send the body uncompressed, gzip or deflate",
            field="body",
            code=_UNSUPPORTED,
        )
    return codings[0]


class Inflater:
    """One body's decoding (pure): fed its bytes as they arrive, it keeps
    what they decode to, and refuses it the moment that passes `limit`."""

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding
        self._limit = limit
        self._z = zlib.decompressobj(_WBITS[coding])
        self._fed = False
        self._out = bytearray()

    def feed(self, data: bytes) -> None:
        if data and not self._fed and self._coding == "deflate" and data[0] & 0x0F != _ZLIB_METHOD:
            # A bare deflate stream without zlib's header, as some clients
            # send `deflate`; aiohttp takes it too.
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        self._fed = self._fed or bool(data)
        while data:
            if self._z.eof:
                data = self._next_member(data)
                if not data:
                    return
            # One byte past the limit tells a body over it; the input not
            # decoded yet waits in unconsumed_tail, so nothing grows beyond.
            room = self._limit - len(self._out) + 1
            try:
                self._out += self._z.decompress(data, room)
            except zlib.error as exc:
                raise unreadable(f"its {self._coding} encoding is corrupt: {exc}") from exc
            if len(self._out) > self._limit:
                raise too_large(self._limit, f"once decoded from {self._coding}", decoded=True)
            data = self._z.unconsumed_tail or self._z.unused_data

    def _next_member(self, data: bytes) -> bytes:
        # gzip allows members one after another (RFC 1952), and zero bytes
        # after the last (tape-block padding, which gzip itself skips);
        # deflate ends once.
        if self._coding == "deflate":
            raise unreadable(f"bytes after the end of its {self._coding} stream")
        data = data.lstrip(b"\x00")
        if data:
            self._z = zlib.decompressobj(_GZIP)
        return data

    def finish(self) -> bytes:
        if self._fed and not self._z.eof:
            raise unreadable(f"its {self._coding} encoding is cut short")
        return bytes(self._out)


async def read_decoded(content: StreamReader, coding: str, limit: int) -> bytes:
    """A body in `coding`, decoded; over `limit` bytes as sent or decoded, refused."""
    inflater = Inflater(coding, limit)
    received = 0
    while chunk := await content.readany():
        received += len(chunk)
        if received > limit:
            # Bytes that decode to nothing (empty blocks) must not run forever either.
            raise too_large(limit, f"at least {received} bytes sent in {coding}")
        inflater.feed(chunk)
    return inflater.finish()


async def read_body(request: web.Request) -> bytes:
    """The request's body, decoded from gzip or deflate; one over
    server.max_body_bytes (as sent or decoded), one in another coding, one
    that cannot be read (a corrupt encoding, a cut chunked body), or one not
    whole within server.body_timeout_s, is the client's error."""
    daemon = request.app[DAEMON]
    limit = daemon.max_body_bytes
    timeout_s = daemon.holder.current.config.server.body_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            header = request.headers.get(hdrs.CONTENT_ENCODING)
            coding = None if header is None else coding_of(header)
            if coding is None:
                return await request.read()
            return await read_decoded(request.content, coding, limit)
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large(limit, str(exc.text)) from exc
    except (RequestPayloadError, HttpProcessingError) as exc:
        _drop_connection(request)
        raise InvalidRequestError(f"cannot be read ({exc})", field="body") from exc
    except TimeoutError as exc:
        _drop_connection(request)
        raise BodyTimeoutError(
            f"did not arrive in full within server.body_timeout_s ({timeout_s:g} s)",
            field="body",
        ) from exc


def _drop_connection(request: web.Request) -> None:
    # The body is done with, and so is the connection once the answer is
    # out: aiohttp would otherwise read on in the rest of the body after the
    # answer, fail again and log it as unhandled. The answer says so
    # (`Connection: close`, middleware), so that a client retrying it does
    # not send its retry on this connection.
    request.content.feed_eof()
    request.protocol.close()
    request[BODY_ABANDONED] = True
