-- How long an attempt waited for a slot of a provider with a max_concurrent
-- before it began (NULL: it did not wait); not part of its ttfb or latency.
ALTER TABLE attempts ADD COLUMN queued_ms REAL;
