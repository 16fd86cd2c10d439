-- The spine: integrations, products, API tokens, the delivery log, subscriptions
-- with their history, and the entitlement rows access checks read.
-- Instants are unix microseconds (BIGINT); booleans are 0/1, as on SQLite, so
-- one set of statements serves both engines.

CREATE TABLE integrations (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    -- The shared secret must be usable to verify requests, so it is stored as
    -- given; it is never returned by the API.
    secret       TEXT NOT NULL,
    product_map  TEXT NOT NULL,  -- JSON object: external product id -> product key
    enabled      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE products (
    key                      TEXT PRIMARY KEY,
    grace_period_seconds     BIGINT NOT NULL,
    suspended_access         BIGINT NOT NULL,
    canceled_access          TEXT NOT NULL,
    purchase_access_seconds  BIGINT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,  -- hex SHA-256 of the token; the token itself is never stored
    created_at  BIGINT NOT NULL
);

-- Every authenticated delivery, whatever its outcome.
CREATE TABLE deliveries (
    id            TEXT PRIMARY KEY,  -- UUIDv7: sorts by arrival
    integration   TEXT NOT NULL,
    provider      TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    dedup_key     TEXT NOT NULL,
    event         TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    subject_kind  TEXT,
    subject_id    TEXT,
    body          BYTEA NOT NULL,
    headers       TEXT NOT NULL     -- JSON object, secrets redacted
);
CREATE INDEX deliveries_by_integration ON deliveries (integration, id);
CREATE INDEX deliveries_by_subject ON deliveries (subject_kind, subject_id);

-- The first delivery of each message: a second one with the same key is a
-- redelivery. The primary key is what makes that race-free.
CREATE TABLE delivery_keys (
    integration  TEXT NOT NULL,
    dedup_key    TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    PRIMARY KEY (integration, dedup_key)
);

CREATE TABLE subscriptions (
    id                    TEXT PRIMARY KEY,
    integration           TEXT NOT NULL,
    provider              TEXT NOT NULL,
    external_id           TEXT NOT NULL,
    email                 TEXT NOT NULL,
    product               TEXT NOT NULL,
    plan                  TEXT,
    state                 TEXT NOT NULL,
    current_period_start  BIGINT,
    current_period_end    BIGINT,
    access_from           BIGINT NOT NULL,
    -- Bumped by every delivery that reaches the subscription: the compare-and-set
    -- that serialises concurrent deliveries, and the order of the history.
    version               BIGINT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    UNIQUE (integration, external_id)
);
CREATE INDEX subscriptions_by_email ON subscriptions (email);

-- The history of subscriptions (and, later, orders): one entry per delivery that
-- reached the subject, whatever its outcome, plus clock and admin entries.
CREATE TABLE transitions (
    subject_kind  TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    event         TEXT NOT NULL,
    from_state    TEXT,
    to_state      TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    delivery_id   TEXT,
    source        TEXT NOT NULL,  -- delivery, clock or admin
    PRIMARY KEY (subject_kind, subject_id, seq)
);

-- One row per (source, product): the window that source grants.
CREATE TABLE entitlements (
    source_kind   TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    product       TEXT NOT NULL,
    email         TEXT NOT NULL,
    integration   TEXT,
    provider      TEXT,
    state         TEXT NOT NULL,
    plan          TEXT,
    -- The facts the window is computed from, kept so a policy change can
    -- recompute it: access_from / paid time / valid_from, and the period end /
    -- valid_until.
    basis_start   BIGINT NOT NULL,
    basis_end     BIGINT,
    grants        BIGINT NOT NULL,
    access_from   BIGINT,
    access_until  BIGINT,
    grace_from    BIGINT,
    changed_at    BIGINT NOT NULL,
    PRIMARY KEY (source_kind, source_id, product)
);
CREATE INDEX entitlements_by_customer ON entitlements (email, product);
CREATE INDEX entitlements_by_product ON entitlements (product);
