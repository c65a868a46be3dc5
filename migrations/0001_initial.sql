-- The daemon's durable state. Times are Unix seconds (REAL); months are
-- UTC 'YYYY-MM'. Booleans are 0/1.

-- One row per request, written once when the request has finished.
CREATE TABLE requests (
    id                          TEXT PRIMARY KEY,
    ts                          REAL NOT NULL,
    dialect                     TEXT NOT NULL,
    profile                     TEXT NOT NULL,
    requested_model             TEXT,
    provider                    TEXT,
    status                      INTEGER NOT NULL,
    stream                      INTEGER NOT NULL,
    ttfb_ms                     REAL,
    total_ms                    REAL NOT NULL,
    input_tokens                INTEGER,
    output_tokens               INTEGER,
    cache_creation_input_tokens INTEGER,
    cache_read_input_tokens     INTEGER,
    usage_estimated             INTEGER NOT NULL DEFAULT 0,
    cost_usd                    REAL,
    savings_usd                 REAL,
    cache_outcome               TEXT,
    repairs                     INTEGER NOT NULL DEFAULT 0,
    error                       TEXT,
    client_disconnected         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX requests_ts ON requests (ts);
CREATE INDEX requests_provider_ts ON requests (provider, ts);

-- Every attempt of a request, in order (skipped providers included).
CREATE TABLE attempts (
    request_id TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    provider   TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT,
    detail     TEXT,
    status     INTEGER,
    ttfb_ms    REAL,
    latency_ms REAL,
    cost_usd   REAL,
    PRIMARY KEY (request_id, seq)
);

-- What the client sent (headers with secrets removed, body compressed) and
-- what it got back, for `coderouterd replay`.
CREATE TABLE replays (
    request_id      TEXT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    ts              REAL NOT NULL,
    dialect         TEXT NOT NULL,
    profile         TEXT NOT NULL,
    provider        TEXT,
    stream          INTEGER NOT NULL,
    request_headers TEXT NOT NULL,
    request_body    BLOB NOT NULL,
    response_body   BLOB,
    response_truncated INTEGER NOT NULL DEFAULT 0,
    size            INTEGER NOT NULL
);
CREATE INDEX replays_ts ON replays (ts);

-- Spend per provider per UTC calendar month; the budget gate reads it at start-up.
CREATE TABLE budget_totals (
    provider      TEXT NOT NULL,
    month         TEXT NOT NULL,
    cost_usd      REAL NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    requests      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, month)
);

-- Providers taken out of rotation, and until when (NULL: until restored).
CREATE TABLE exclusions (
    provider TEXT PRIMARY KEY,
    reason   TEXT NOT NULL,
    since    REAL NOT NULL,
    until    REAL
);

-- Append-only and tamper-evident: each row's hash covers the previous
-- row's hash, so an edited or deleted row breaks the chain after it.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    ts        REAL NOT NULL,
    event     TEXT NOT NULL,
    fields    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
