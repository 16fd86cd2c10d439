-- Fast reads: every replica keeps what access checks need in memory and
-- follows this table to stay current. Each write of entitlement rows appends
-- one touch per customer it wrote (email set) or one per product whose rows a
-- policy change rewrote (email NULL); a replica that has applied touch N
-- reloads the customers and products of every touch above N. Writers append
-- unnumbered touches and commit concurrently; the numbering transaction that
-- numbers the change log (src/store/changes.rs, `Sequencer`) numbers them
-- too, from their own counter, so sequences increase in commit order.
CREATE TABLE entitlement_touches (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sequence  BIGINT UNIQUE,
    at        BIGINT NOT NULL,
    email     TEXT,
    product   TEXT
);
CREATE INDEX entitlement_touches_unnumbered ON entitlement_touches (id) WHERE sequence IS NULL;
CREATE INDEX entitlement_touches_by_time ON entitlement_touches (at);
ALTER TABLE change_counter ADD COLUMN touches BIGINT NOT NULL DEFAULT 0;
