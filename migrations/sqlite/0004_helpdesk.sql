-- The helpdesk: what a ticket is about, and API tokens.
--
-- topic: what the opener said the ticket is about (installation, configuration,
-- registration, malfunction, other); NULL when not stated. The gateway never judges the
-- description's text: "other" is the opener's statement that the request is not about
-- A-Real's products, and such a ticket is refused.
ALTER TABLE tickets ADD COLUMN topic TEXT;

-- Tokens the helpdesk calls the API with. Only the SHA-256 of a token is kept; the token
-- itself is shown once, when it is created. org_id scopes a token to one organisation.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    org_id      INTEGER REFERENCES organisations (id),
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    revoked_at  TEXT
);
-- A name picks one token among those in use; a revoked token's name can be used again.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- The auto-close job and the queue look for tickets by state and customer activity.
CREATE INDEX tickets_activity ON tickets (last_customer_activity_at);
