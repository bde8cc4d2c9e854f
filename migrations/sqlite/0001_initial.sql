-- The gateway's schema for SQLite. The PostgreSQL twin has the same name and shape.
-- One SQL text serves both backends through sqlx's Any driver, so columns use only
-- INTEGER and TEXT: times are RFC 3339 UTC text of fixed width (they sort and compare
-- as text), dates are YYYY-MM-DD, flags are 0/1.

CREATE TABLE organisations (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    inn               TEXT    NOT NULL UNIQUE,
    name              TEXT    NOT NULL,
    purchased_on      TEXT,
    module_paid_until TEXT,
    trial_started_on  TEXT,
    partner           INTEGER NOT NULL DEFAULT 0 CHECK (partner IN (0, 1)),
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);

CREATE TABLE boxes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id           INTEGER NOT NULL REFERENCES organisations (id),
    name             TEXT    NOT NULL,
    product          TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    address          TEXT,
    login            TEXT    NOT NULL,
    host_key         TEXT,
    auth_method      TEXT    NOT NULL DEFAULT 'certificate' CHECK (auth_method IN ('certificate', 'static-key')),
    allow_forwarding INTEGER NOT NULL DEFAULT 0 CHECK (allow_forwarding IN (0, 1)),
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE people (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    login         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('operator', 'customer', 'auditor', 'admin')),
    org_id        INTEGER REFERENCES organisations (id),
    email         TEXT,
    password_hash TEXT,
    totp_secret   TEXT,
    disabled_at   TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    CHECK ((role = 'customer') = (org_id IS NOT NULL))
);

CREATE TABLE ssh_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id   INTEGER NOT NULL REFERENCES people (id),
    fingerprint TEXT    NOT NULL UNIQUE,
    public_key  TEXT    NOT NULL,
    comment     TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL
);
CREATE INDEX ssh_keys_person ON ssh_keys (person_id);

CREATE TABLE tickets (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id                    INTEGER NOT NULL REFERENCES organisations (id),
    contact_name              TEXT    NOT NULL,
    contact_phone             TEXT,
    contact_email             TEXT,
    product                   TEXT    NOT NULL,
    version                   TEXT    NOT NULL,
    description               TEXT    NOT NULL,
    state                     TEXT    NOT NULL CHECK (state IN ('open', 'in_progress', 'escalated', 'resolved', 'closed', 'refused')),
    priority                  INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 4),
    response_due_at           TEXT,
    first_response_at         TEXT,
    refusal_reason            TEXT,
    close_reason              TEXT,
    last_customer_activity_at TEXT    NOT NULL,
    created_at                TEXT    NOT NULL,
    updated_at                TEXT    NOT NULL,
    closed_at                 TEXT
);
-- Ticket numbers are what customers quote on the phone: start them at T-1001.
INSERT INTO sqlite_sequence (name, seq) VALUES ('tickets', 1000);
CREATE INDEX tickets_org ON tickets (org_id);
CREATE INDEX tickets_state ON tickets (state);

CREATE TABLE ticket_comments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id     INTEGER NOT NULL REFERENCES tickets (id),
    author_id     INTEGER REFERENCES people (id),
    author_name   TEXT    NOT NULL,
    from_customer INTEGER NOT NULL CHECK (from_customer IN (0, 1)),
    body          TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
);
CREATE INDEX ticket_comments_ticket ON ticket_comments (ticket_id);

CREATE TABLE grants (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id      INTEGER NOT NULL REFERENCES tickets (id),
    box_id         INTEGER NOT NULL REFERENCES boxes (id),
    requested_by   INTEGER NOT NULL REFERENCES people (id),
    operator_id    INTEGER REFERENCES people (id),
    reason         TEXT    NOT NULL,
    requested_secs INTEGER NOT NULL CHECK (requested_secs > 0),
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'revoked', 'expired')),
    starts_at      TEXT,
    ends_at        TEXT,
    decided_by     INTEGER REFERENCES people (id),
    decided_at     TEXT,
    decision_note  TEXT,
    revoked_by     INTEGER REFERENCES people (id),
    revoked_at     TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);
CREATE INDEX grants_ticket ON grants (ticket_id);
CREATE INDEX grants_state ON grants (state);

CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_id         INTEGER NOT NULL REFERENCES grants (id),
    ticket_id        INTEGER NOT NULL REFERENCES tickets (id),
    box_id           INTEGER NOT NULL REFERENCES boxes (id),
    operator_id      INTEGER NOT NULL REFERENCES people (id),
    client_addr      TEXT,
    node             TEXT    NOT NULL,
    started_at       TEXT    NOT NULL,
    ended_at         TEXT,
    end_reason       TEXT,
    bytes_in         INTEGER NOT NULL DEFAULT 0,
    bytes_out        INTEGER NOT NULL DEFAULT 0,
    recording        TEXT,
    recording_sha256 TEXT
);
CREATE INDEX sessions_ticket ON sessions (ticket_id);
CREATE INDEX sessions_live ON sessions (ended_at);

CREATE TABLE session_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions (id),
    at         TEXT    NOT NULL,
    channel    INTEGER,
    kind       TEXT    NOT NULL,
    details    TEXT    NOT NULL
);
CREATE INDEX session_events_session ON session_events (session_id);

-- The audit log has no foreign keys on purpose: it must outlive the rows it talks about.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    at         TEXT    NOT NULL,
    actor_kind TEXT    NOT NULL,
    actor_id   INTEGER,
    actor_name TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    org_id     INTEGER,
    ticket_id  INTEGER,
    box_id     INTEGER,
    grant_id   INTEGER,
    session_id INTEGER,
    details    TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL UNIQUE
);
CREATE INDEX audit_events_org ON audit_events (org_id);
CREATE INDEX audit_events_ticket ON audit_events (ticket_id);
CREATE INDEX audit_events_box ON audit_events (box_id);
CREATE INDEX audit_events_session ON audit_events (session_id);
CREATE INDEX audit_events_at ON audit_events (at);
