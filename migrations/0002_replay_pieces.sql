-- Request bodies of replay records as shared pieces (coderouterd/state/pieces.py):
-- a conversation's system prompt, tools and history are stored once, not
-- again with every turn.

-- A piece of request bodies, zlib-compressed, named by the SHA-256 of its
-- uncompressed bytes. last_ref: the newest record time it was written with;
-- retention deletes pieces no remaining record can name (see retention.py).
CREATE TABLE replay_pieces (
    digest   BLOB PRIMARY KEY,
    data     BLOB NOT NULL,
    size     INTEGER NOT NULL,
    last_ref REAL NOT NULL
);
CREATE INDEX replay_pieces_last_ref ON replay_pieces (last_ref);

-- 0: request_body is the compressed body; 1: a compressed recipe of pieces.
ALTER TABLE replays ADD COLUMN body_format INTEGER NOT NULL DEFAULT 0;

-- Nothing reads requests by provider; the index cost a b-tree insert per request.
DROP INDEX requests_provider_ts;
