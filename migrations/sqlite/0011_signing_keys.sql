-- Entitlement-token signing keys (DESIGN.md "Entitlement tokens"): Ed25519,
-- named by their RFC 7638 thumbprint. A key is published from `created_at`
-- and signs from `signs_from` (a rotated-in key a little later, so that
-- verifiers caching the JWKS see it first) until `retired_at`; then
-- `private_d`, the private half (the seed, base64url), is cleared, and the
-- public half stays published until every token it signed has expired.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    public_x    TEXT NOT NULL,
    private_d   TEXT,
    created_at  INTEGER NOT NULL,
    signs_from  INTEGER NOT NULL,
    retired_at  INTEGER
);
