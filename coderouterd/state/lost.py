"""Pieces a failed batch may have lost, and the replay rows that must check theirs (pure).

The recorder writes a piece once; later records only name it
(recorder.py). When the batch that carried a piece fails, the recorder
forgets it and the next record needing it writes it again, but records
built before the failure, queued or still being built, name it all the
same: committed as they are, they could never be read back. So the writer
keeps the digests of the pieces its failed batches carried until a
committed batch writes them again, and has each replay row that names one
check in its INSERT that its pieces are stored (records.INSERT_REPLAY): a
row whose piece is missing is left out and counted with the replays whose
base is missing. The database decides, so a row is never left out for a
piece that is stored after all, whatever the order in which records were
built, queued and committed. Rows naming none of them, nearly all, are
not checked: the check costs about 2 us a piece, and a long
conversation's record stored in pieces names dozens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from coderouterd.state.records import ReplayRow, Writable

# Only records built before a failure name its pieces without writing them,
# and they reach the writer soon after it; the cap bounds the memory of a
# disk that fails again and again (a failed batch carries at most a few
# thousand pieces).
MAX_LOST = 65_536


def _written(records: Iterable[object]) -> Iterator[bytes]:
    for r in records:
        if isinstance(r, ReplayRow):
            for p in r.new_pieces:
                yield p.digest


class LostPieces:
    def __init__(self, max_digests: int = MAX_LOST) -> None:
        self._max = max_digests
        # Oldest first.
        self._digests: dict[bytes, None] = {}

    def __len__(self) -> int:
        return len(self._digests)

    def guard(self, records: list[Writable], *, every: bool = False) -> list[Writable]:
        """The records, each replay row naming a piece that may be lost (with
        `every`, naming any piece) set to check its pieces when inserted."""
        if not every and not self._digests:
            return records
        return [
            msgspec.structs.replace(r, check_pieces=True)
            if isinstance(r, ReplayRow) and r.named_pieces and (every or self._names_lost(r))
            else r
            for r in records
        ]

    def settled(self, records: Iterable[object], *, stored: bool) -> None:
        """A batch ended: `stored`, every piece it carried is in the database;
        else (rolled back, or some records refused) any of them may be missing."""
        if stored:
            if self._digests:
                for d in _written(records):
                    self._digests.pop(d, None)
            return
        for d in _written(records):
            # Newest last: the cap lets the oldest go first.
            self._digests.pop(d, None)
            self._digests[d] = None
        while len(self._digests) > self._max:
            del self._digests[next(iter(self._digests))]

    def _names_lost(self, row: ReplayRow) -> bool:
        return any(d in self._digests for d in row.named_pieces)
