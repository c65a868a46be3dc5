"""The JSON lines the daemon writes: one object per line, secrets redacted."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

from coderouterd.telemetry.logging import configure, dumps, get_logger


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
