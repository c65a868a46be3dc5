"""Replay records: what the client sent and got back, built off the request path.

`ReplayRecorder` takes what the client sent and got back. The request path
appends to a bounded deque; a background task stores each body as what it
adds to its conversation's last record (state/deltas.py) when it can, else
cuts it into shared pieces (state/pieces.py) and compresses and writes only
the pieces not stored recently (several as one pack); the response goes
with it. When the deque is full the request path builds the oldest records
itself: records are never lost to a busy loop. A recorder that is behind
(see BEHIND) spends less on each record: it stores what it writes
uncompressed, but for packs.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from coderouterd.state import deltas, pieces
from coderouterd.state.drops import DropReporter
from coderouterd.state.pending import PendingReplay
from coderouterd.state.records import BODY_DELTA, BODY_PIECES, PackRow, PieceRow, ReplayRow
from coderouterd.state.replay import compress, redact_headers, stored
from coderouterd.state.writer import Writer

GATHER_S = 0.02
# What records waiting to be built may hold: past it, a recorder that falls
# behind (a loop at full load) builds records on the request path (submit)
# rather than let memory grow with bodies.
MAX_QUEUE_BYTES = 4 << 20
# A build costs tens of microseconds (more with up to INLINE_COMPRESS bytes
# to compress), so this bounds how long a drain holds the loop at a time.
BUILDS_PER_YIELD = 16
# Compressing more than this (new pieces, recipe, response) goes to a thread:
# about 70 us of zlib at level 1, as long as the event loop may be held.
INLINE_COMPRESS = 16384
# A drain that finds more records than this waiting (requests arrive faster
# than ~800/s), and a build on the request path, store what they write
# uncompressed but for a pack: at full load zlib's set-up on every small blob
# costs more CPU than anything else a record needs. A pack (a first turn's
# tens of KB of new pieces) is one call, costing about what writing its bytes
# uncompressed does (measured at c=32), for an eighth of the bytes. What is
# stored uncompressed counts against replay.max_total_mb and stays so until
# it is written again.
BEHIND = 16


def _finish(blobs: list[bytes], squeeze: list[bool]) -> list[bytes]:
    """Each blob compressed or stored as it is, as `squeeze` says."""
    return [compress(b) if z else stored(b) for b, z in zip(blobs, squeeze, strict=True)]


def _ignore(dropped: int) -> None:
    pass


# Why a record was not built; `_hand_over` counts each.
class _Skipped(enum.Enum):
    UNWRITTEN = enum.auto()
    TOO_LARGE = enum.auto()


_MAX_UNWRITTEN = 4096


@dataclass(frozen=True, slots=True)
class _Contents:
    """What a record's body is stored as, before compression."""

    # Pieces not written recently, by digest.
    new: dict[bytes, bytes]
    # The new pieces' data (or their pack's), the record's own blob (a recipe
    # or a delta), the response.
    blobs: list[bytes]
    body_format: int
    # BODY_DELTA: the record it continues, and the bytes of its body kept.
    base: deltas.Base | None = None
    base_len: int | None = None
    # BODY_PIECES: the new pieces as one blob, when there are several, and
    # the pieces it names that an earlier record wrote.
    pack: pieces.Pack | None = None
    named: tuple[bytes, ...] = ()

    def squeeze(self, all_blobs: bool) -> list[bool]:
        """Which blobs to compress: all of them, or (behind) only the pack."""
        packed = self.pack is not None
        return [all_blobs or (packed and i == 0) for i in range(len(self.blobs))]


class KnownPieces:
    """Pieces written recently, by digest, with the time written (bounded LRU).

    Only a cache: forgetting an entry costs one more write of the piece.
    """

    def __init__(self, max_entries: int = 16_384) -> None:
        self._max = max_entries
        self._written: collections.OrderedDict[bytes, float] = collections.OrderedDict()

    def fresh(self, digest: bytes, ts: float) -> bool:
        written = self._written.get(digest)
        if written is None or ts - written >= pieces.PIECE_REFRESH_S:
            return False
        self._written.move_to_end(digest)
        return True

    def note(self, digest: bytes, ts: float) -> None:
        self._written[digest] = ts
        self._written.move_to_end(digest)
        while len(self._written) > self._max:
            self._written.popitem(last=False)

    def forget(self, digests: Iterable[bytes]) -> None:
        for d in digests:
            self._written.pop(d, None)

    def clear(self) -> None:
        self._written.clear()


class ReplayRecorder:
    def __init__(
        self,
        writer: Writer,
        *,
        max_record_bytes: int,
        max_queue: int = 256,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        gather_s: float = GATHER_S,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._writer = writer
        self.max_record_bytes = max_record_bytes
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        # Bytes the queued records hold alive (their bodies and responses).
        self._queued_bytes = 0
        self._gather_s = gather_s
        # Each record with its size, counted once.
        self._queue: collections.deque[tuple[PendingReplay, int]] = collections.deque()
        self._wake = asyncio.Event()
        self._known = KnownPieces()
        self._memo = pieces.DigestMemo()
        self._bases = deltas.Bases()
        # Requests whose row the writer refused: their records could not be
        # inserted, so they are neither built nor made a base (bounded; a
        # record is built soon after its request's row is submitted).
        self._unwritten: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._stopping = False
        # One drain at a time: a second waits for the first (its record may be
        # compressing in a thread), so records reach the writer in order.
        self._draining = asyncio.Lock()
        self._drops = DropReporter(on_drop or _ignore)
        self.dropped = 0
        self.too_large = 0
        # Records built by submit() because the queue was full.
        self.built_inline = 0

    def submit(self, pending: PendingReplay) -> bool:
        """Queue a record to be built; False if the writer refused one built now.

        A recorder that has fallen behind (a loop at full load serves requests
        faster than the background drain builds their records) builds its
        oldest waiting records here, on the submitting request's path, until
        this one fits: a saturated daemon then serves fewer requests and
        records every one, its memory held to the queue's caps.
        """
        size = pending.size
        kept = True
        while self._queue and (
            len(self._queue) >= self._max_queue or self._queued_bytes + size > self._max_queue_bytes
        ):
            kept = self._hand_over(self._build_now(self._take())) and kept
            self.built_inline += 1
        self._queue.append((pending, size))
        self._queued_bytes += size
        self._wake.set()
        return kept

    def memo_sizes(self) -> dict[str, tuple[int, int]]:
        """Each memo's conversations and bytes, for `ctl status`."""
        return {"replay pieces": self._memo.size(), "replay last records": self._bases.size()}

    def forget(self) -> None:
        """After rows were lost (a failed write) or deleted (retention): pieces
        believed written, and records a delta would name, may not be stored.
        Records built before are checked by the writer (lost.py)."""
        self._known.clear()
        self._bases.clear()

    def request_unwritten(self, request_id: str) -> None:
        """The writer refused this request's row: its record is not to be built."""
        self._unwritten[request_id] = None
        while len(self._unwritten) > _MAX_UNWRITTEN:
            self._unwritten.popitem(last=False)

    def _count_drops(self, n: int) -> None:
        self.dropped += n
        self._drops.dropped(n)

    async def run(self) -> None:
        """Build and hand over batches until stop(); then the rest, and return."""
        while not self._stopping:
            await self._wake.wait()
            if not self._stopping:
                # Let a burst pass before building its records.
                await asyncio.sleep(self._gather_s)
            self._wake.clear()
            await self.drain()

    def stop(self) -> None:
        """End run() after one last drain; stopping it so, rather than by
        cancelling, never leaves a compression running in the worker thread."""
        self._stopping = True
        self._wake.set()

    async def drain(self) -> None:
        """Build and hand to the writer everything queued now.

        Records are built on the event loop, BUILDS_PER_YIELD at a time with
        a yield in between: splitting a body is mostly comparing bytes with
        the previous turn, and a worker thread would cost more in hand-offs
        and GIL switches than it saves. Yielding after every record would let
        a busy loop serve requests faster than it builds their records, and
        the queue would overflow. Only compressing more than INLINE_COMPRESS
        bytes goes to a thread. A drain that starts with more than BEHIND
        records waiting stores their recipes and responses uncompressed. A
        drain cut short mid-build puts the record back at the head of the
        queue, so it loses nothing.
        """
        async with self._draining:
            await self._drain()

    async def _drain(self) -> None:
        built = 0
        squeeze = len(self._queue) <= BEHIND
        while self._queue:
            p, size = self._queue[0]
            self._take()
            try:
                row = await self._build(p, squeeze)
            except BaseException:
                # Cut short mid-build: the record waits for the next drain.
                self._queue.appendleft((p, size))
                self._queued_bytes += size
                raise
            self._hand_over(row)
            built += 1
            if built % BUILDS_PER_YIELD == 0:
                await asyncio.sleep(0)
        self._drops.flush()

    def _take(self) -> PendingReplay:
        p, size = self._queue.popleft()
        self._queued_bytes -= size
        return p

    def _hand_over(self, row: ReplayRow | _Skipped) -> bool:
        if isinstance(row, _Skipped):
            if row is _Skipped.TOO_LARGE:
                self.too_large += 1
            return True
        if self._writer.submit(row):
            return True
        # Later records may lean on pieces this one carried, or continue it.
        self._known.forget(p.digest for p in row.new_pieces)
        self._bases.clear()
        self._count_drops(1)
        return False

    async def _build(self, p: PendingReplay, squeeze: bool) -> ReplayRow | _Skipped:
        """The row to write, or why there is none; `squeeze`: compress what it writes."""
        contents = self._contents(p)
        if contents is None:
            return _Skipped.UNWRITTEN
        blobs, which = contents.blobs, contents.squeeze(squeeze)
        # Behind, the loop is busy anyway: a hand-off to a thread costs more.
        if squeeze and sum(len(b) for b in blobs) > INLINE_COMPRESS:
            finished = await asyncio.to_thread(_finish, blobs, which)
        else:
            finished = _finish(blobs, which)
        return self._row(p, contents, finished)

    def _build_now(self, p: PendingReplay) -> ReplayRow | _Skipped:
        contents = self._contents(p)
        if contents is None:
            return _Skipped.UNWRITTEN
        return self._row(p, contents, _finish(contents.blobs, contents.squeeze(False)))

    def _contents(self, p: PendingReplay) -> _Contents | None:
        """The record's body as a delta on its conversation's last record if
        it continues it, else as pieces; None if its request row is not stored."""
        if p.request_id in self._unwritten:
            del self._unwritten[p.request_id]
            self._count_drops(1)
            return None
        if p.body is not None and p.conversation is not None:
            found = self._bases.against(p.conversation, p.body, p.turn, p.shared)
            if found is not None:
                base, shared = found
                blobs = [p.body[shared:], p.response_body]
                return _Contents({}, blobs, BODY_DELTA, base, shared)
        recipe, parts = pieces.split(p.request_fields, self._memo, p.conversation)
        new: dict[bytes, bytes] = {}
        named: list[bytes] = []
        for part in parts:
            if part.digest in new:
                continue
            if self._known.fresh(part.digest, p.ts):
                named.append(part.digest)
            else:
                new[part.digest] = part.data
        if len(new) < 2:
            blobs = [*new.values(), recipe, p.response_body]
            return _Contents(new, blobs, BODY_PIECES, named=tuple(named))
        pack = pieces.pack(new)
        blobs = [pack.data, recipe, p.response_body]
        return _Contents(new, blobs, BODY_PIECES, pack=pack, named=tuple(named))

    def _row(
        self, p: PendingReplay, contents: _Contents, finished: list[bytes]
    ) -> ReplayRow | _Skipped:
        *datas, request, response = finished
        pack = contents.pack
        new_pack = None
        if pack is None:
            written = [
                PieceRow(digest=d, data=data, size=len(data), last_ref=p.ts)
                for d, data in zip(contents.new, datas, strict=True)
            ]
        else:
            new_pack = PackRow(digest=pack.digest, data=datas[0], last_ref=p.ts)
            written = [
                PieceRow(digest=d, data=b"", size=n, last_ref=p.ts, pack=pack.digest, pack_at=at)
                for d, at, n in pack.places
            ]
        size = len(request) + len(response) + sum(len(b) for b in datas)
        if size > self.max_record_bytes:
            if p.conversation is not None:
                # The next turn cannot continue a record that is not stored.
                self._bases.drop(p.conversation)
            return _Skipped.TOO_LARGE
        for w in written:
            self._known.note(w.digest, p.ts)
        base = contents.base
        if p.conversation is not None and p.body is not None:
            depth = 0 if base is None else base.depth + 1
            self._bases.note(p.conversation, deltas.Base(p.request_id, p.body, depth, p.turn))
        return ReplayRow(
            request_id=p.request_id,
            ts=p.ts,
            dialect=p.dialect,
            profile=p.profile,
            provider=p.provider,
            stream=p.stream,
            request_headers=msgspec.json.encode(redact_headers(p.headers)).decode(),
            request_body=request,
            body_format=contents.body_format,
            new_pieces=tuple(written),
            new_pack=new_pack,
            named_pieces=contents.named,
            base_id=None if base is None else base.request_id,
            base_len=contents.base_len,
            response_body=response,
            response_truncated=p.response_truncated,
            size=size,
        )
