"""decode_prefix: the value a JSON document cut anywhere begins with."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coderouterd.state.json_prefix import decode_prefix


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b'{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
        # The string the cut falls in, as far as it goes.
        (b'{"text": "all work and no pl', {"text": "all work and no pl"}),
        (b'{"a": {"b": ["c", "d', {"a": {"b": ["c", "d"]}}),
        # A key without its value, or cut itself, is left out.
        (b'{"a": 1, "b"', {"a": 1}),
        (b'{"a": 1, "b": ', {"a": 1}),
        (b'{"a": 1, "b', {"a": 1}),
        # So are a number and a literal the cut may have shortened.
        (b'{"a": [1, 23', {"a": [1]}),
        (b'{"a": 1.', {}),
        (b'{"a": tr', {}),
        (b'{"a": 23, "b": true', {"a": 23, "b": True}),
        # An escape cut short goes, and a surrogate pair cut in two.
        (b'{"a": "x\\u00e', {"a": "x"}),
        (b'{"a": "x\\', {"a": "x"}),
        (b'{"a": "x\\\\', {"a": "x\\"}),
        (b'{"a": "x\\ud83d\\ude', {"a": "x"}),
        (b'{"a": "x\\ud83d\\ude00', {"a": "x\U0001f600"}),
        (b'{"a": "\\\\u12', {"a": "\\u12"}),
        # So does a character whose UTF-8 bytes the cut split.
        ('{"a": "caf\u00e9'.encode()[:-1], {"a": "caf"}),
        (b'[{}, [], {"a": [', [{}, [], {"a": []}]),
    ],
)
def test_the_value_up_to_the_cut(data: bytes, value: Any) -> None:
    assert decode_prefix(data) == value


@pytest.mark.parametrize(
    "data",
    [b"", b"  ", b"<html>", b'{"a": 1} trailing', b'{"a" 1}', b"[1 2]", b"[1,]", b'{"a": x'],
)
def test_what_begins_no_json_value_is_none(data: bytes) -> None:
    assert decode_prefix(data) is None


def test_deep_nesting_takes_no_recursion() -> None:
    value = decode_prefix(b"[" * 100_000)
    depth = 0
    while value:
        value, depth = value[0], depth + 1
    assert depth == 99_999


def _begins(part: Any, whole: Any) -> bool:
    """Whether `part` is what a cut copy of `whole` could hold."""
    if isinstance(whole, str):
        return isinstance(part, str) and whole.startswith(part)
    if isinstance(whole, list):
        return (
            isinstance(part, list)
            and len(part) <= len(whole)
            and all(p == w for p, w in zip(part[:-1], whole, strict=False))
            and (not part or _begins(part[-1], whole[len(part) - 1]))
        )
    if isinstance(whole, dict):
        return isinstance(part, dict) and all(
            k in whole and (part[k] == whole[k] or _begins(part[k], whole[k])) for k in part
        )
    return part == whole


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(_JSON.filter(lambda v: isinstance(v, (dict, list))), st.booleans(), st.booleans())
def test_every_cut_of_a_document_begins_its_value(
    value: Any, ascii_only: bool, indent: bool
) -> None:
    encoded = json.dumps(value, ensure_ascii=ascii_only, indent=2 if indent else None).encode()
    assert decode_prefix(encoded) == value
    for cut in range(1, len(encoded)):
        assert _begins(decode_prefix(encoded[:cut]), value), encoded[:cut]
