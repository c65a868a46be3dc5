"""A log whose reader went away (EPIPE, EIO) or whose disk is full costs
the line, counted, never the code that logged it."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator

import pytest

from coderouterd.telemetry.logging import configure, dropped_lines, get_logger


class GoneReader(io.StringIO):
    """A stream that fails as a pipe with no reader does, until told otherwise."""

    gone = True

    def write(self, text: str) -> int:
        if self.gone:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


@pytest.fixture
def gone() -> Iterator[GoneReader]:
    out = GoneReader()
    configure("info", out, cache=False)
    try:
        yield out
    finally:
        configure("debug", cache=False)  # the suite's own set-up (tests/conftest.py)


def test_a_line_the_reader_cannot_take_is_dropped_and_counted(gone: GoneReader) -> None:
    before = dropped_lines()
    get_logger().warning("provider.failing", provider="a")
    get_logger().info("request.completed", status=200)
    assert dropped_lines() == before + 2
    gone.gone = False
    get_logger().info("request.completed", status=200)
    assert json.loads(gone.getvalue())["event"] == "request.completed"
    assert dropped_lines() == before + 2


def test_a_pipe_with_no_reader_costs_only_the_line() -> None:
    read, write = os.pipe()
    os.close(read)
    out = os.fdopen(write, "w")
    configure("info", out, cache=False)
    try:
        before = dropped_lines()
        get_logger().info("request.completed", status=200)
        assert dropped_lines() == before + 1
    finally:
        configure("debug", cache=False)
        with contextlib.suppress(BrokenPipeError):  # what the buffer still holds
            out.close()
