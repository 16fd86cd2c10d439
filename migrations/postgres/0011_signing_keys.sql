-- Entitlement-token signing keys (DESIGN.md "Entitlement tokens"): Ed25519,
-- named by their RFC 7638 thumbprint. `private_d` is the private half (the
-- seed, base64url); it is cleared when the key is retired, since a retired key
-- only verifies. A retired key stays published until every token it signed
-- has expired.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    public_x    TEXT NOT NULL,
    private_d   TEXT,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
