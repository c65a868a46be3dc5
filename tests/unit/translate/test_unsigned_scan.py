"""The byte scan that decides whether a history may hold unsigned thinking."""

from __future__ import annotations

import pytest

from coderouterd.translate.anthropic_passthrough import has_empty_signature


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b'[{"type":"thinking","thinking":"t","signature":""}]', True),
        (b'[{"type": "thinking", "signature": ""}]', True),
        (b'[{"type": "thinking",\n  "signature" :\n    ""\n}]', True),
        (b'[{"type":"thinking","signature":"EqQBCkgIARAB"}]', False),
        (b'[{"type":"thinking","signature":"x"},{"signature":""}]', True),
        # Inside a string the quotes are escaped: not a key.
        (b'[{"type":"text","text":"{\\"signature\\":\\"\\"}"}]', False),
        (b'[{"type":"text","text":"no thinking here"}]', False),
        (b"[]", False),
    ],
)
def test_empty_signature_scan(raw: bytes, found: bool) -> None:
    assert has_empty_signature(raw) is found
