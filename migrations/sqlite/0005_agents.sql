-- Agents: boxes reached through an outbound tunnel instead of a direct address.
--
-- agent_tokens holds one-time enrolment tokens, only as SHA-256 (the token is shown once).
-- agents holds each enrolment of a box: the agent's key, what it reported, and where its
-- connection is. A box has at most one active (not revoked) enrolment; older ones stay
-- for the record. online_since is set while a gateway node holds the agent's control
-- connection (`connection` names it, so a stale disconnect cannot mark a newer
-- connection offline); offline_since is when the last one dropped.

CREATE TABLE agent_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    box_id       INTEGER NOT NULL REFERENCES boxes (id),
    token_sha256 TEXT    NOT NULL UNIQUE,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    used_at      TEXT,
    agent_id     INTEGER
);
CREATE INDEX agent_tokens_box ON agent_tokens (box_id);

CREATE TABLE agents (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    box_id                 INTEGER NOT NULL REFERENCES boxes (id),
    key_fingerprint        TEXT    NOT NULL UNIQUE,
    public_key             TEXT    NOT NULL,
    enrolled_at            TEXT    NOT NULL,
    revoked_at             TEXT,
    revoked_by             TEXT,
    agent_version          TEXT,
    product                TEXT,
    version                TEXT,
    remote_access_disabled INTEGER NOT NULL DEFAULT 0 CHECK (remote_access_disabled IN (0, 1)),
    node                   TEXT,
    connection             TEXT,
    online_since           TEXT,
    offline_since          TEXT,
    last_seen              TEXT
);
CREATE UNIQUE INDEX agents_active_box ON agents (box_id) WHERE revoked_at IS NULL;
CREATE INDEX agents_node ON agents (node);
