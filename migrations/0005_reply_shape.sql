-- What each answer did, as the client got it: why the model stopped (in
-- Anthropic's words; NULL without an answer or when the answer did not say)
-- and whether it called a tool; and whether the request offered tools.
-- Drift detection reads a provider's recent answers back from these at
-- start-up (coderouterd/healing/drift.py).
ALTER TABLE requests ADD COLUMN stop_reason TEXT;
ALTER TABLE requests ADD COLUMN tool_use INTEGER;
ALTER TABLE requests ADD COLUMN tools_offered INTEGER NOT NULL DEFAULT 0;
