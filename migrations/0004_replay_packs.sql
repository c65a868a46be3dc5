-- A record's new pieces compressed together (coderouterd/state/pieces.py):
-- zlib's cost on pieces of a few KB is per call, not per byte, and a
-- conversation's first turn brings dozens of them. Compressed as one blob
-- they take about a seventh of the CPU and a third of the bytes.

-- A pack, named by the SHA-256 of its pieces' digests in order. Its data is
-- the pieces' bytes one after the other, compressed or stored as a whole.
-- last_ref: the newest record time it was written with; every piece pointing
-- into it has a last_ref no newer (a piece named again is rewritten with its
-- own data or another pack), so retention deletes a pack with the pieces it
-- holds, by the same cutoff.
CREATE TABLE replay_packs (
    digest   BLOB PRIMARY KEY,
    data     BLOB NOT NULL,
    last_ref REAL NOT NULL
);
CREATE INDEX replay_packs_last_ref ON replay_packs (last_ref);

-- A packed piece keeps no data of its own (data is empty): its bytes are
-- `size` bytes from `pack_at` in pack `pack`'s uncompressed data.
ALTER TABLE replay_pieces ADD COLUMN pack BLOB;
ALTER TABLE replay_pieces ADD COLUMN pack_at INTEGER;
