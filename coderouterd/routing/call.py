"""One client request as the engine sees it, independent of HTTP framework."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from coderouterd.translate.anthropic_request import HistoryCheck
    from coderouterd.translate.estimate import MediaScan


@dataclass(frozen=True, slots=True)
class Call:
    request_id: str
    dialect: str
    # Top-level body fields, values left as undecoded JSON so unknown fields
    # reach the upstream byte for byte.
    fields: Mapping[str, msgspec.Raw]
    # The client's headers that adapters may forward, keys lower-cased.
    headers: Mapping[str, str]
    stream: bool
    requested_model: str | None
    profile: str
    # Unix time the request arrived, for response objects that carry one.
    created: int = 0
    # What ingress learned of fields["messages"] (thinking blocks), if anything.
    history: HistoryCheck | None = None
    # Which conversation ingress read the body through (BodyMemo), if any: a hint.
    conversation: int | None = None
    # The body as the client sent it, when that is exactly `fields` encoded.
    body: bytes | None = None
    # Which body of its conversation this is, and how many first bytes it
    # shares with the one before (ingress/body.py): hints.
    turn: int = 0
    shared: int = 0
    # What ingress found of fields["messages"]'s inline media, if anything.
    media: MediaScan | None = None
