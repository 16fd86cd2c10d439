-- The change log: one row each time what an access check answers for one
-- (customer, product) changes, written in the transaction that causes it.
-- Sequences come from one counter row and increase in commit order with no
-- gaps, so a consumer that has seen change N has seen every change below N.
-- SQLite (one writer at a time) numbers a change as it is appended; on
-- PostgreSQL writers append unnumbered rows (sequence NULL) and commit
-- concurrently, and one numbering transaction at a time, holding the counter
-- row, numbers what has committed (src/store/changes.rs, `Sequencer`).
CREATE TABLE change_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  INTEGER NOT NULL
);
INSERT INTO change_counter (id, last) VALUES (1, 0);

CREATE TABLE changes (
    id                 INTEGER PRIMARY KEY,
    sequence           INTEGER UNIQUE,
    at                 INTEGER NOT NULL,
    email              TEXT NOT NULL,
    product            TEXT NOT NULL,
    entitled           INTEGER NOT NULL,
    reason             TEXT NOT NULL,
    valid_until        INTEGER,
    plan               TEXT,
    -- The answer before; all NULL when the customer had no source for the product.
    prev_entitled      INTEGER,
    prev_reason        TEXT,
    prev_valid_until   INTEGER,
    prev_plan          TEXT,
    cause_kind         TEXT NOT NULL,
    cause_delivery     TEXT,
    cause_source_kind  TEXT,
    cause_source_id    TEXT,
    cause_event        TEXT
);
CREATE INDEX changes_unnumbered ON changes (id) WHERE sequence IS NULL;
CREATE INDEX changes_by_customer ON changes (email, product, sequence);
CREATE INDEX changes_by_product ON changes (product, sequence);
CREATE INDEX changes_by_time ON changes (at);
