"""structlog set-up: JSON lines on stderr, request id bound from context."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO, cast

import msgspec
import structlog

from coderouterd.scrub import masked_urls
from coderouterd.telemetry import events

if TYPE_CHECKING:
    from aiohttp.http_exceptions import HttpProcessingError

# Keys whose values must never reach a log line, whoever passes them.
_SECRET_KEYS = frozenset({"api_key", "x-api-key", "authorization", "password", "token", "secret"})


# Whether each key seen so far is a secret's: keys are the code's own names,
# so this stays small; bounded all the same.
_secret_key: dict[str, bool] = {}
_MAX_KEYS = 4096


def redact_secrets(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in event:
        secret = _secret_key.get(key)
        if secret is None:
            if len(_secret_key) >= _MAX_KEYS:
                _secret_key.clear()
            secret = _secret_key[key] = key.lower() in _SECRET_KEYS
        if secret:
            event[key] = "[redacted]"
    return event


def mask_traceback_urls(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A formatted traceback quotes exception messages and source lines as
    they are: a URL's password in one (a base_url a library echoed) is
    shown as ***, as in every other line the daemon writes."""
    text = event.get("exception")
    if isinstance(text, str):
        event["exception"] = masked_urls(text)
    return event


class UtcStamp:
    """Adds `timestamp`: ISO 8601 UTC with microseconds, e.g.
    2026-12-06T19:21:40.721294Z. The date and time to the second are
    formatted once per second, not once per line."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        # (second, its formatted date and time), replaced whole: a line logged
        # from another thread never pairs one second with another's text.
        self._second: tuple[int, str] = (-1, "")

    def __call__(
        self, _logger: object, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            )
        event["timestamp"] = f"{cached[1]}.{int((now - second) * 1e6):06d}Z"
        return event


# What JSON cannot hold is written as its repr, as structlog's own renderer does.
_encoder = msgspec.json.Encoder(enc_hook=repr)


def dumps(event: object, **_: object) -> str:
    """A log line's JSON: msgspec's, compact; about a third of the stdlib's
    cost for a request.completed line, written at info once per request."""
    return _encoder.encode(event).decode()


def render_bytes(_logger: object, _name: str, event: MutableMapping[str, Any]) -> bytes:
    """The line's JSON as the bytes written: no str to decode and encode again."""
    return _encoder.encode(event)


class _Dropped:
    """Lines the log's reader could not take since the process started."""

    lines = 0


def dropped_lines() -> int:
    return _Dropped.lines


class Sink:
    """Where the lines go: a stream whose failure costs only the line.

    stderr is a pipe to whatever reads the log (journald, a shipper,
    `| tee`); when that reader goes away (EPIPE, EIO) or the disk under a
    file fills, the line is dropped and counted, never raised into the code
    that logged it, which may be a request half-way through its fallback.
    No retry: a reader that went away does not come back to this pipe.
    """

    # structlog keeps a write lock per file in a WeakKeyDictionary.
    __slots__ = ("__weakref__", "_flush", "_write")

    def __init__(self, stream: Any) -> None:
        self._write = stream.write
        self._flush = stream.flush

    def write(self, line: Any) -> None:
        # The logger flushes after each write: both are done here, so one
        # failed line is counted once.
        try:
            self._write(line)
            self._flush()
        except OSError:
            _Dropped.lines += 1

    def flush(self) -> None:
        pass


def configure(level: str = "info", stream: TextIO | None = None, *, cache: bool = True) -> None:
    out = stream or sys.stderr
    # A stream with a binary layer (stderr, a file) gets the encoded bytes
    # themselves; one without (io.StringIO) gets text. Either way one write()
    # per line: PrintLogger would make two, the line and then the newline.
    binary = getattr(out, "buffer", None)
    renderer: Any
    factory: Any
    if binary is not None:
        with contextlib.suppress(OSError):
            out.flush()  # what was written as text goes out before the first line
        # The loggers call only write() and flush(), which a Sink has.
        renderer = render_bytes
        factory = structlog.BytesLoggerFactory(cast("BinaryIO", Sink(binary)))
    else:
        renderer = structlog.processors.JSONRenderer(serializer=dumps)
        factory = structlog.WriteLoggerFactory(cast("TextIO", Sink(out)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            UtcStamp(),
            redact_secrets,
            structlog.processors.format_exc_info,
            mask_traceback_urls,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
    _route_library_records()


def get_logger() -> Any:
    return structlog.get_logger("coderouterd")


class _LibraryRecords(logging.Handler):
    """What libraries log through the standard logging module (aiohttp's
    'Error handling request', asyncio's warnings), written as our own JSON
    lines: a log shipper reading stderr sees nothing else."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
            refused = _refused_request(record)
            if refused is not None:
                # The parser's message and traceback quote the offending
                # header line: a client's key, as likely as not.
                fields.update(error=type(refused).__name__, status=refused.code)
            elif record.exc_info:
                fields["exc_info"] = record.exc_info
            get_logger().log(record.levelno, events.LIBRARY_LOG, **fields)
        except Exception:  # a broken record must not break the code that logged it
            self.handleError(record)


def _refused_request(record: logging.LogRecord) -> HttpProcessingError | None:
    """The parse error of a request head aiohttp's server refused, if the
    record is its 'Error handling request'."""
    exc = record.exc_info[1] if record.exc_info else None
    # Only a serving daemon has aiohttp's server, and so these errors: looked
    # up, not imported, so the commands that serve nothing need no aiohttp.
    errors = sys.modules.get("aiohttp.http_exceptions")
    if (
        record.name == "aiohttp.server"
        and errors is not None
        and isinstance(exc, errors.HttpProcessingError)
    ):
        return cast("HttpProcessingError", exc)
    return None


def _route_library_records() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _LibraryRecords)]:
        root.removeHandler(handler)
    root.addHandler(_LibraryRecords(logging.WARNING))
    # Python's warnings (a library's deprecation, an unclosed resource) go
    # through logging as well, not as plain text on stderr. Set each time,
    # not by logging.captureWarnings, which keeps the first hook it replaced.
    warnings.showwarning = _log_warning


def _log_warning(  # noqa: PLR0917 - the signature of warnings.showwarning
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    text = warnings.formatwarning(message, category, filename, lineno, line)
    logging.getLogger("py.warnings").warning("%s", text.rstrip())
