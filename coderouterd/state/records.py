"""What the state writer writes: one Struct per kind of record, each with its SQL (pure).

`statements()` turns a record into (sql, params) pairs and nothing else, so
the SQL is tested without a database and the writer stays a thin loop.
Audit events are the exception: their row depends on the row before it
(seq and hash chain), so the writer turns each into an `AuditRow` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from coderouterd.state.chain import chain_hash

Statement = tuple[str, tuple[Any, ...]]

REQUEST_COLUMNS = (
    "id", "ts", "dialect", "profile", "requested_model", "provider", "status", "stream",
    "ttfb_ms", "total_ms", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_read_input_tokens", "usage_estimated", "cost_usd", "savings_usd", "cache_outcome",
    "repairs", "error", "client_disconnected", "stop_reason", "tool_use", "tools_offered",
    "prompt_estimate", "prompt_images", "prompt_image_tokens",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "request_id", "seq", "provider", "outcome", "reason", "detail", "status", "ttfb_ms",
    "latency_ms", "cost_usd", "context_window", "prompt_tokens", "queued_ms", "model",
    "prompt_estimate",
)  # fmt: skip
REPLAY_COLUMNS = (
    "request_id", "ts", "dialect", "profile", "provider", "stream", "request_headers",
    "request_body", "body_format", "response_body", "response_truncated", "size", "base_id",
    "base_len",
)  # fmt: skip
# replays.body_format: request_body holds the body itself, a recipe naming
# pieces in `replay_pieces` (state/pieces.py), or the bytes that follow the
# first base_len bytes of the body of record base_id (state/deltas.py); each
# blob compressed or stored as it is (replay.compress / replay.stored).
BODY_WHOLE = 0
BODY_PIECES = 1
BODY_DELTA = 2
AUDIT_COLUMNS = ("seq", "ts", "event", "fields", "prev_hash", "hash")


def _insert(table: str, columns: Sequence[str]) -> str:
    # Table and column names come from the constants above, never from input.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608


INSERT_REQUEST = _insert("requests", REQUEST_COLUMNS)
INSERT_ATTEMPT = _insert("attempts", ATTEMPT_COLUMNS)
# The pieces a replay row is to check: their digests, 32 bytes each one after
# the other, or NULL. It follows the columns and the three parameters of the
# guards before it; numbered, so that one binding serves its three uses.
_CHECKED = f"?{len(REPLAY_COLUMNS) + 4}"
# A replay whose request row never made it (dropped on overflow) is skipped:
# as a plain INSERT its foreign key would fail, and take the whole batch with it.
# So is a delta whose base is not stored, and a record naming a piece that
# is not (its batch failed): either could never be read back. Only pieces
# the writer doubts are checked (lost.py): about 2 us each, where a NULL
# costs 0.3 us.
INSERT_REPLAY = (
    f"INSERT INTO replays ({', '.join(REPLAY_COLUMNS)}) "  # noqa: S608 - constant names
    f"SELECT {', '.join('?' * len(REPLAY_COLUMNS))} "
    "WHERE EXISTS (SELECT 1 FROM requests WHERE id = ?)"
    " AND (? IS NULL OR EXISTS (SELECT 1 FROM replays WHERE request_id = ?))"
    f" AND ({_CHECKED} IS NULL OR NOT EXISTS ("
    "WITH RECURSIVE at(i) AS"
    f" (SELECT 1 UNION ALL SELECT i + 32 FROM at WHERE i + 32 <= length({_CHECKED}))"
    " SELECT 1 FROM at WHERE NOT EXISTS"
    f" (SELECT 1 FROM replay_pieces WHERE digest = substr({_CHECKED}, i, 32))))"
)
ADD_BUDGET = (
    "INSERT INTO budget_totals"
    " (provider, month, cost_usd, input_tokens, output_tokens, requests)"
    " VALUES (?, ?, ?, ?, ?, 1)"
    " ON CONFLICT (provider, month) DO UPDATE SET"
    " cost_usd = cost_usd + excluded.cost_usd,"
    " input_tokens = input_tokens + excluded.input_tokens,"
    " output_tokens = output_tokens + excluded.output_tokens,"
    " requests = requests + 1"
)
SET_EXCLUSION = (
    "INSERT INTO exclusions (provider, reason, since, until) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (provider) DO UPDATE SET"
    " reason = excluded.reason, since = excluded.since, until = excluded.until"
)
CLEAR_EXCLUSION = "DELETE FROM exclusions WHERE provider = ?"
# A piece written again (named after PIECE_REFRESH_S, or forgotten) takes the
# new write whole, where its bytes are included: a packed piece must never
# outlive its pack, whose last_ref is that of the write that put it there.
UPSERT_PIECE = (
    "INSERT INTO replay_pieces (digest, data, size, last_ref, pack, pack_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (digest) DO UPDATE SET data = excluded.data, size = excluded.size,"
    " last_ref = excluded.last_ref, pack = excluded.pack, pack_at = excluded.pack_at"
    " WHERE excluded.last_ref >= replay_pieces.last_ref"
)
# The same pieces make the same pack (and the same bytes once uncompressed).
UPSERT_PACK = (
    "INSERT INTO replay_packs (digest, data, last_ref) VALUES (?, ?, ?)"
    " ON CONFLICT (digest) DO UPDATE SET last_ref = max(last_ref, excluded.last_ref)"
)
INSERT_AUDIT = _insert("audit", AUDIT_COLUMNS)


class AttemptRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `attempts`; its request_id is the id of the RequestRow holding it."""

    seq: int
    provider: str
    outcome: str
    reason: str | None = None
    detail: str | None = None
    status: int | None = None
    ttfb_ms: float | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    # A "too_long" attempt: the window and prompt tokens its error named.
    context_window: int | None = None
    prompt_tokens: int | None = None
    # How long it waited for a slot of the provider (max_concurrent) first.
    queued_ms: float | None = None
    # The model it was sent to; None when skipped, or written before it was kept.
    model: str | None = None
    # The prompt estimated as this provider was sent it (without the tools,
    # for one that cannot call them); None when it was sent nothing, or
    # written before it was kept (the request's estimate stands in).
    prompt_estimate: int | None = None

    def statement(self, request_id: str) -> Statement:
        row = (
            request_id, self.seq, self.provider, self.outcome, self.reason, self.detail,
            self.status, self.ttfb_ms, self.latency_ms, self.cost_usd, self.context_window,
            self.prompt_tokens, self.queued_ms, self.model, self.prompt_estimate,
        )  # fmt: skip
        return (INSERT_ATTEMPT, row)


class RequestRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    ts: float
    dialect: str
    profile: str
    requested_model: str | None
    provider: str | None
    status: int
    stream: bool
    ttfb_ms: float | None
    total_ms: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = None
    savings_usd: float | None = None
    cache_outcome: str | None = None
    repairs: int = 0
    error: str | None = None
    client_disconnected: bool = False
    stop_reason: str | None = None
    tool_use: bool | None = None
    tools_offered: bool = False
    # The prompt estimated at four bytes a token; None in rows written before it was kept.
    prompt_estimate: int | None = None
    # Inline images in the prompt, and the tokens they count for in the
    # estimate (None in rows written before it was kept: IMAGE_TOKENS each).
    prompt_images: int | None = None
    prompt_image_tokens: int | None = None
    attempts: tuple[AttemptRow, ...] = ()

    def statements(self) -> list[Statement]:
        row = (
            self.id, self.ts, self.dialect, self.profile, self.requested_model, self.provider,
            self.status, int(self.stream), self.ttfb_ms, self.total_ms, self.input_tokens,
            self.output_tokens, self.cache_creation_input_tokens, self.cache_read_input_tokens,
            int(self.usage_estimated), self.cost_usd, self.savings_usd, self.cache_outcome,
            self.repairs, self.error, int(self.client_disconnected), self.stop_reason,
            None if self.tool_use is None else int(self.tool_use), int(self.tools_offered),
            self.prompt_estimate, self.prompt_images, self.prompt_image_tokens,
        )  # fmt: skip
        return [(INSERT_REQUEST, row), *(a.statement(self.id) for a in self.attempts)]


class PieceRow(msgspec.Struct, frozen=True, kw_only=True):
    """One piece of request bodies, shared by every record naming it: its own
    blob, or (data empty) `size` bytes from `pack_at` in a pack's."""

    digest: bytes
    data: bytes
    size: int
    last_ref: float
    pack: bytes | None = None
    pack_at: int | None = None

    def statements(self) -> list[Statement]:
        row = (self.digest, self.data, self.size, self.last_ref, self.pack, self.pack_at)
        return [(UPSERT_PIECE, row)]


class PackRow(msgspec.Struct, frozen=True, kw_only=True):
    """Several pieces' bytes as one blob (state/pieces.py, Pack)."""

    digest: bytes
    data: bytes
    last_ref: float

    def statements(self) -> list[Statement]:
        return [(UPSERT_PACK, (self.digest, self.data, self.last_ref))]


class ReplayRow(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    ts: float
    dialect: str
    profile: str
    provider: str | None
    stream: bool
    request_headers: str
    request_body: bytes
    response_body: bytes | None
    response_truncated: bool
    # Stored bytes this record added: its own blobs and those of the pieces
    # and pack it wrote.
    size: int
    body_format: int = BODY_WHOLE
    # Pieces not written recently, written with this record, and the pack
    # holding their bytes if there are several.
    new_pieces: tuple[PieceRow, ...] = ()
    new_pack: PackRow | None = None
    # The digests of the pieces its recipe names that an earlier record wrote,
    # and whether the INSERT is to check that they are stored: the writer
    # says so when one may have been lost with a failed batch (lost.py).
    named_pieces: tuple[bytes, ...] = ()
    check_pieces: bool = False
    # BODY_DELTA: the record whose body this one continues, and how much of it.
    base_id: str | None = None
    base_len: int | None = None

    def statements(self) -> list[Statement]:
        row = (
            self.request_id, self.ts, self.dialect, self.profile, self.provider,
            int(self.stream), self.request_headers, self.request_body, self.body_format,
            self.response_body, int(self.response_truncated), self.size, self.base_id,
            self.base_len,
        )  # fmt: skip
        return [
            *(self.new_pack.statements() if self.new_pack is not None else ()),
            *(s for p in self.new_pieces for s in p.statements()),
            (INSERT_REPLAY, (*row, self.request_id, self.base_id, self.base_id, self._checked())),
        ]

    def _checked(self) -> bytes | None:
        # Never empty: an empty blob would still name one (empty) piece.
        if self.check_pieces and self.named_pieces:
            return b"".join(self.named_pieces)
        return None


class BudgetIncrement(msgspec.Struct, frozen=True, kw_only=True):
    """One request's spend, added to its provider's total for the UTC month."""

    provider: str
    month: str
    cost_usd: float
    input_tokens: int
    output_tokens: int

    def statements(self) -> list[Statement]:
        params = (self.provider, self.month, self.cost_usd, self.input_tokens, self.output_tokens)
        return [(ADD_BUDGET, params)]


class FinishedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request's row and the spend it adds to its provider's month, as one record.

    One record is one submit and lies whole in one batch, so the row and its
    spend are committed in the same transaction, or dropped together:
    `budget_totals` counts exactly the requests whose rows were written.
    """

    row: RequestRow
    spend: BudgetIncrement | None = None

    def statements(self) -> list[Statement]:
        own = self.row.statements()
        return own if self.spend is None else [*own, *self.spend.statements()]


class ExclusionSet(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    reason: str
    since: float
    # None: excluded until someone restores it.
    until: float | None = None

    def statements(self) -> list[Statement]:
        return [(SET_EXCLUSION, (self.provider, self.reason, self.since, self.until))]


class ExclusionCleared(msgspec.Struct, frozen=True, kw_only=True):
    provider: str

    def statements(self) -> list[Statement]:
        return [(CLEAR_EXCLUSION, (self.provider,))]


# The row change an audit event records (an exclusion set or cleared).
RowChange = ExclusionSet | ExclusionCleared


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `audit`, chained to the row before it, and the row change it records."""

    seq: int
    ts: float
    event: str
    fields: str
    prev_hash: str
    hash: str
    change: RowChange | None = None

    def statements(self) -> list[Statement]:
        row = (self.seq, self.ts, self.event, self.fields, self.prev_hash, self.hash)
        own = [(INSERT_AUDIT, row)]
        return own if self.change is None else [*self.change.statements(), *own]


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An audit event, and the row change it records if any: one record, so
    the two lie in one batch and are committed together or lost together (an
    `exclusions` row is never without its `provider.excluded` event)."""

    ts: float
    event: str
    fields: dict[str, Any]
    change: RowChange | None = None

    def fields_json(self) -> str:
        # Sorted keys: a verifier re-encoding the stored fields gets the same bytes.
        return msgspec.json.encode(self.fields, order="sorted").decode("utf-8")

    def chained(self, *, seq: int, prev_hash: str) -> AuditRow:
        fields = self.fields_json()
        return AuditRow(
            seq=seq,
            ts=self.ts,
            event=self.event,
            fields=fields,
            prev_hash=prev_hash,
            hash=chain_hash(prev_hash, seq, self.ts, self.event, fields),
            change=self.change,
        )


# A budget increment is written only with its request (FinishedRequest).
Record = RequestRow | FinishedRequest | ReplayRow | ExclusionSet | ExclusionCleared | AuditEvent
Writable = RequestRow | FinishedRequest | ReplayRow | ExclusionSet | ExclusionCleared | AuditRow
# Never dropped for overload: counted against the writer's audit cap, not the
# request cap. An exclusion change goes with its audit event (AuditEvent.change).
KEPT = (AuditEvent, ExclusionSet, ExclusionCleared)

# Statements of one batch run table by table, so each table's inserts go to
# SQLite as one executemany instead of one thread hop per row (about 30x
# faster). The order respects the foreign keys (requests before attempts and
# replays); the sort is stable, so exclusion changes and audit rows keep the
# order they were submitted in, and budget increments commute.
_PHASE = {
    INSERT_REQUEST: 0,
    INSERT_ATTEMPT: 1,
    UPSERT_PIECE: 2,
    INSERT_REPLAY: 3,
    ADD_BUDGET: 4,
    SET_EXCLUSION: 5,
    CLEAR_EXCLUSION: 5,
    INSERT_AUDIT: 6,
}


def batch_statements(records: Iterable[Writable]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The statements of a batch, grouped into runs of the same SQL."""
    flat = [s for r in records for s in r.statements()]
    flat.sort(key=lambda s: _PHASE.get(s[0], len(_PHASE)))
    grouped: list[tuple[str, list[tuple[Any, ...]]]] = []
    for sql, params in flat:
        if grouped and grouped[-1][0] == sql:
            grouped[-1][1].append(params)
        else:
            grouped.append((sql, [params]))
    return grouped
