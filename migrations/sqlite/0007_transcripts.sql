-- The transcript index behind search ("who ran `iptables -F` last month"), written
-- from a session's recording when the session ends (or later, for sessions without one).
--
-- transcripts has a row per indexed session, so the sessions still to index are found
-- by its absence. transcript_lines holds the lines: typed (source 'input', after line
-- editing) or shown (source 'output', completed screen lines, so a command completed
-- with Tab is found too), each at its offset in the recording in milliseconds.
-- folded is the line lower-cased by the gateway (Unicode-aware, unlike SQLite's LOWER),
-- which a search matches a lower-cased needle against.

CREATE TABLE transcripts (
    session_id INTEGER NOT NULL PRIMARY KEY REFERENCES sessions (id),
    indexed_at TEXT    NOT NULL,
    lines      INTEGER NOT NULL
);

CREATE TABLE transcript_lines (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions (id),
    offset_ms  INTEGER NOT NULL,
    source     TEXT    NOT NULL,
    line       TEXT    NOT NULL,
    folded     TEXT    NOT NULL
);
CREATE INDEX transcript_lines_session ON transcript_lines (session_id);
