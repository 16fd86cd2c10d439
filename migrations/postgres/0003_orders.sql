-- One-time purchases, and every attempt at applying a delivery.

CREATE TABLE orders (
    id           TEXT PRIMARY KEY,
    integration  TEXT NOT NULL,
    provider     TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    email        TEXT NOT NULL,
    state        TEXT NOT NULL,
    paid_at      BIGINT,
    -- When the SaaS backend registered it (POST /v1/orders); null for orders
    -- whose payloads said who bought what (Zenofy).
    registered_at BIGINT,
    version      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (integration, external_id)
);
CREATE INDEX orders_by_email ON orders (email);

CREATE TABLE order_products (
    order_id  TEXT NOT NULL,
    product   TEXT NOT NULL,
    PRIMARY KEY (order_id, product)
);

-- The external id a delivery named, so deliveries for an order nobody had
-- registered yet (outcome unmatched) can be found when it is registered.
ALTER TABLE deliveries ADD COLUMN external_ref TEXT;
CREATE INDEX deliveries_by_external_ref ON deliveries (integration, external_ref);

-- Each time a delivery was applied: on receipt, on the registration of its
-- order, on replay. The delivery row carries the latest.
CREATE TABLE delivery_attempts (
    delivery_id  TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    trigger      TEXT NOT NULL,  -- received, registration or replay
    outcome      TEXT NOT NULL,
    reason       TEXT,
    subject_kind TEXT,
    subject_id   TEXT,
    PRIMARY KEY (delivery_id, seq)
);

-- A row both an order's registration and an unmatched delivery for it write
-- first: whichever comes second waits for the other to commit, so a payment
-- racing its registration is either seen by the registration or sees the order.
CREATE TABLE order_refs (
    integration  TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    touches      BIGINT NOT NULL,
    PRIMARY KEY (integration, external_id)
);
