"""`escape_controls`: text of a client's or a backend's choosing as one line of
a command's text output."""

from __future__ import annotations

import pytest

from coderouterd.scrub import escape_controls


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("claude-sonnet-4", "claude-sonnet-4"),
        ("x\ntotal 999", "x\\ntotal 999"),
        ("a\r\tb", "a\\r\\tb"),
        ("\x00\x1b[2J\x1f", "\\x00\\x1b[2J\\x1f"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("sep\u2028\u2029", "sep\\u2028\\u2029"),
        # Printable text past ASCII is shown as it is.
        ("modèle 日本 \xa0🙂", "modèle 日本 \xa0🙂"),
    ],
)
def test_each_control_character_is_shown_as_its_escape(text: str, shown: str) -> None:
    assert escape_controls(text) == shown
    assert len(escape_controls(text).splitlines()) <= 1
