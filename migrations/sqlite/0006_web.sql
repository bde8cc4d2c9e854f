-- The web panel's sign-ins. Only the SHA-256 of a session's cookie is kept, so a copy of
-- the database does not let anyone sign in. A session waits for its second factor
-- (second_factor_at NULL) when the person has TOTP turned on.
CREATE TABLE web_sessions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash       TEXT    NOT NULL UNIQUE,
    person_id        INTEGER NOT NULL REFERENCES people (id),
    csrf             TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    last_seen_at     TEXT    NOT NULL,
    second_factor_at TEXT,
    address          TEXT    NOT NULL,
    ended_at         TEXT
);
CREATE INDEX web_sessions_person ON web_sessions (person_id);

-- One-time links: the first admin's setup link printed by `serve`, and password links an
-- admin hands to a person. Only the SHA-256 of the link's secret is kept.
CREATE TABLE web_links (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  TEXT    NOT NULL UNIQUE,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('setup', 'password')),
    person_id   INTEGER REFERENCES people (id),
    created_at  TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    used_at     TEXT
);
