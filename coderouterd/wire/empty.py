"""Whether a raw JSON value says nothing, read in place (pure).

A request's fields are kept as raw JSON, spaced as the client wrote them: an
empty `tools` from a template may span lines (`[\\n      ]`). A match from
the first byte stops at the first that tells, so a long value is neither
copied nor read through.
"""

from __future__ import annotations

import re

from msgspec import Raw

# JSON's whitespace, the only bytes between tokens.
_WS = rb"[ \t\r\n]*"
# No bytes at all as well: a raw value made by hand, never a decoded one.
_NOTHING = re.compile(_WS + rb"(?:null|false|\"\"|\[" + _WS + rb"\]|\{" + _WS + rb"\})?" + _WS)


def says_nothing(raw: Raw | bytes) -> bool:
    """Whether `raw` is null, false, an empty string, or an empty array or
    object, however spaced (or nothing at all): a field given so asks for
    nothing."""
    return _NOTHING.fullmatch(raw) is not None
