-- Operator console sessions (src/store/console.rs). The cookie carries a
-- random secret; only its SHA-256 is kept. Each session has its own token for
-- the console's forms, and ends at expires_at or at sign-out.
CREATE TABLE console_sessions (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    csrf        TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
