"""The audit log's hash chain (pure).

Each row's hash covers the previous row's hash and the row's own content,
so editing a row changes its hash and deleting one breaks the link after
it. The first row links to GENESIS.
"""

from __future__ import annotations

import hashlib

GENESIS = "0" * 64


def chain_hash(prev_hash: str, seq: int, ts: float, event: str, fields_json: str) -> str:
    # repr(ts) round-trips a float exactly, so a verifier recomputes the same bytes.
    material = "\x1f".join((prev_hash, str(seq), repr(ts), event, fields_json))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
