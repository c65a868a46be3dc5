-- The model an attempt was sent to (its provider's `model`); NULL for a
-- skipped attempt, or a row written before it was kept. Pace and drift read
-- a provider's speeds and answers back at start-up only where it matches
-- the provider's model (NULL counts as matching): another model is judged
-- on its own answers (coderouterd/healing/pace_watch.py, drift_watch.py).
ALTER TABLE attempts ADD COLUMN model TEXT;
