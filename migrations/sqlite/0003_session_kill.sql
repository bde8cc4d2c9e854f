-- A session can be terminated from any node or the CLI: the request is stored and the
-- node carrying the session acts on it within a watchdog tick.
ALTER TABLE sessions ADD COLUMN kill_requested_at TEXT;
ALTER TABLE sessions ADD COLUMN kill_requested_by TEXT;
