-- Signed checkpoints of the audit chain, retention, and a guard against editing the log.
-- The PostgreSQL twin has the same name and shape.

-- A checkpoint: the audit key's SSH signature over "the chain reached event #seq, whose
-- hash is `hash`, at `at`" (the signed text is documented in docs/audit.md). It reveals
-- a cut-off tail or a chain rewritten after it was signed.
CREATE TABLE audit_checkpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    seq             INTEGER NOT NULL,
    hash            TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    key_fingerprint TEXT    NOT NULL,
    signature       TEXT    NOT NULL
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);

-- Verification starts from the newest audit.retention event; find it without a scan.
CREATE INDEX audit_events_action ON audit_events (action);

-- The audit log is append-only: nothing updates an event, and only the retention policy
-- deletes, inside the transaction that also appends its audit.retention event. It opens
-- the way by writing a row here (events below `below_seq` may go) and removes it before
-- committing, so no other transaction ever sees one. Against someone who can run SQL as
-- the database owner this is a speed bump, not a wall: the hash chain and the signed
-- checkpoints are what detect tampering.
CREATE TABLE audit_retention_permit (
    below_seq INTEGER NOT NULL
);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_retention_permit WHERE OLD.seq < below_seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
