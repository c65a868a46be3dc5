"""An empty `messages` list is refused however it is spaced: a pretty-printer
or a hand-written file lays `[]` out over lines."""

from __future__ import annotations

import pytest

from coderouterd.errors import InvalidRequestError
from coderouterd.ingress.body import BodyMemo, parse_body


@pytest.mark.parametrize(
    "spaced",
    [
        b"[\n" + b" " * 20 + b"]",
        b"[" + b"\t" * 15 + b"]",
        b"[\r\n" + b"    \r\n" * 100 + b"]",
    ],
)
def test_an_empty_messages_list_spaced_over_many_bytes_is_refused(spaced: bytes) -> None:
    body = b'{\n  "model": "m",\n  "messages": ' + spaced + b',\n  "max_tokens": 5\n}'
    for read in (parse_body, BodyMemo().parse):
        with pytest.raises(InvalidRequestError) as info:
            read(body)
        assert info.value.field == "messages"
