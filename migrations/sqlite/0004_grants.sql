-- Entitlements given by hand: promotional, support, comp. Revoking keeps the
-- row (revoked_at set) so the customer's timeline still shows it.
CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    product      TEXT NOT NULL,
    valid_from   INTEGER NOT NULL,
    valid_until  INTEGER,
    reason       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX grants_by_email ON grants (email);
