-- A replay record may hold only what its body adds to an earlier record of the
-- same conversation (coderouterd/state/deltas.py): body_format 2, the body is
-- the first base_len bytes of record base_id's body, then this row's own.
ALTER TABLE replays ADD COLUMN base_id TEXT;
ALTER TABLE replays ADD COLUMN base_len INTEGER;

-- Retention finds the records that continue one it deletes, to store them
-- whole first. Only delta rows are in it.
CREATE INDEX replays_base ON replays (base_id) WHERE base_id IS NOT NULL;
