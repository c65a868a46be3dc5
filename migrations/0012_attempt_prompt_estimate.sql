-- The prompt estimated as it was sent to each attempt's provider: without
-- the tools for one that cannot call them, so it may differ from the
-- request's `prompt_estimate`, which is the answering provider's. A window
-- learned from a `too_long` attempt is a limit on what that provider got,
-- and is read back from this at start-up (coderouterd/routing/windows.py);
-- NULL for an attempt sent nothing (skipped, refused), or a row written
-- before it was kept (the request's estimate stands in).
ALTER TABLE attempts ADD COLUMN prompt_estimate INTEGER;
