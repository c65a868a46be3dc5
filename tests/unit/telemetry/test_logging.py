"""The JSON lines the daemon writes: one object per line, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coderouterd.telemetry.logging import UtcStamp, configure, dumps, get_logger, redact_secrets


def test_a_log_line_is_one_json_object_in_the_order_given() -> None:
    line = dumps({"request_id": "r1", "ttfb_ms": 1.5, "usage": None, "note": "café"})
    assert "\n" not in line
    assert list(json.loads(line).items()) == [
        ("request_id", "r1"),
        ("ttfb_ms", 1.5),
        ("usage", None),
        ("note", "café"),
    ]


def test_what_json_cannot_hold_is_written_as_its_repr() -> None:
    path, ident = Path("/var/lib/x"), uuid.UUID(int=7)
    assert json.loads(dumps({"path": path, "id": ident, "set": {1}})) == {
        "path": repr(path),
        "id": str(ident),
        "set": [1],
    }


def test_the_configured_logger_writes_redacted_json_lines() -> None:
    out = io.StringIO()
    configure("info", out, cache=False)
    try:
        get_logger().info("provider.ejected", provider="p", api_key="sk-secret")
        get_logger().debug("not.written")
    finally:
        # Back to the suite's own set-up (tests/conftest.py).
        configure("debug", cache=False)
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "provider.ejected" and event["level"] == "info"
    assert event["api_key"] == "[redacted]" and "sk-secret" not in line


def test_what_libraries_log_is_written_as_json_lines_too() -> None:
    out = io.StringIO()
    configure("info", out, cache=False)
    try:
        library = logging.getLogger("aiohttp.server")
        try:
            raise ValueError("boom")
        except ValueError:
            library.exception("Error handling request from %s", "127.0.0.1")
        library.info("not written: below warning")
    finally:
        configure("debug", cache=False)
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert (event["event"], event["level"], event["logger"]) == (
        "library.log",
        "error",
        "aiohttp.server",
    )
    assert event["message"] == "Error handling request from 127.0.0.1"
    assert "ValueError: boom" in event["exception"]
    # Configured again, the records are routed once, not twice.
    assert sum(type(h).__name__ == "_LibraryRecords" for h in logging.getLogger().handlers) == 1


def test_a_file_gets_the_lines_as_bytes_after_what_was_written_as_text(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    with path.open("w", encoding="utf-8") as out:
        out.write("before\n")
        configure("info", out, cache=False)
        try:
            get_logger().info("server.started", note="café", **{"token": "t0ken"})
        finally:
            configure("debug", cache=False)
    first, line = path.read_text(encoding="utf-8").splitlines()
    event = json.loads(line)
    assert first == "before"
    assert event["note"] == "café"
    assert event == {**event, "token": "[redacted]"}


@pytest.mark.parametrize("key", ["Authorization", "API_KEY", "X-Api-Key", "password"])
def test_secret_keys_are_redacted_whatever_their_case(key: str) -> None:
    event = redact_secrets(None, "info", {key: "s3cret", "provider": "p"})
    assert event == {key: "[redacted]", "provider": "p"}


def test_the_timestamp_is_utc_iso_with_microseconds_and_the_current_second() -> None:
    stamp = UtcStamp()
    before = time.time()
    first = stamp(None, "info", {})["timestamp"]
    second = stamp(None, "info", {})["timestamp"]
    after = time.time()
    for value in (first, second):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", value)
        at = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        assert before - 1e-6 <= at <= after
    assert first <= second


def test_a_logged_traceback_shows_no_url_password() -> None:
    out = io.StringIO()
    configure("info", out, cache=False)
    try:
        try:
            raise ValueError("cannot reach http://user:hunter2@127.0.0.1:9/v1")
        except ValueError:
            get_logger().exception("config.reload_rejected")
    finally:
        configure("debug", cache=False)
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert "ValueError" in event["exception"]
    assert "hunter2" not in line
    assert "http://user:***@127.0.0.1:9/v1" in event["exception"]


def test_a_python_warning_is_written_as_a_json_line_too() -> None:
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        configure("info", out, cache=False)
        try:
            warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
        finally:
            configure("debug", cache=False)
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert (event["event"], event["level"], event["logger"]) == (
        "library.log",
        "warning",
        "py.warnings",
    )
    assert "DeprecationWarning: a library's deprecation" in event["message"]
