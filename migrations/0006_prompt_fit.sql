-- Whether a prompt fitted: the daemon's estimate of each request's prompt
-- (four bytes of JSON a token), and, for an attempt a backend refused as too
-- long, the context window and prompt tokens its error named. The windows
-- learned from such errors are read back from these at start-up
-- (coderouterd/routing/windows.py).
ALTER TABLE requests ADD COLUMN prompt_estimate INTEGER;
ALTER TABLE attempts ADD COLUMN context_window INTEGER;
ALTER TABLE attempts ADD COLUMN prompt_tokens INTEGER;
