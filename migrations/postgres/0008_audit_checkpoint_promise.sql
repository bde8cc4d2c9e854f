-- A serving gateway's checkpoint promises the next by `next_due` (signed with it, see
-- docs/audit.md): a cut back to it shows once the promise is broken. NULL: no promise
-- (signed at shutdown, by `audit checkpoint`, or before promises existed).
-- The SQLite twin has the same name and shape.
ALTER TABLE audit_checkpoints ADD COLUMN next_due TEXT;

-- Checkpoints are never changed or deleted; like the events' guard, a speed bump for
-- someone with SQL access, not the protection (that is the checkpoint log outside the
-- database, `[audit] checkpoint_log`).
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only';
END
$$;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();

CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();
