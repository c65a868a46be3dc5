"""A body whose `messages` is empty is refused at ingress, in either dialect."""

from __future__ import annotations

import pytest

from coderouterd.errors import InvalidRequestError
from coderouterd.ingress.body import BodyMemo, parse_body


@pytest.mark.parametrize(
    "body",
    [b'{"model":"m","messages":[]}', b'{"messages": [ ]}', b'{"messages":[\n\t],"stream":true}'],
)
def test_an_empty_messages_list_is_refused_naming_the_field(body: bytes) -> None:
    for read in (parse_body, BodyMemo().parse):
        with pytest.raises(InvalidRequestError) as info:
            read(body)
        assert info.value.field == "messages"
