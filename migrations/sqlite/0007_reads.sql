-- Fast reads: every replica keeps what access checks need in memory and
-- follows this table to stay current. Each write of entitlement rows appends
-- one touch per customer it wrote (email set) or one per product whose rows a
-- policy change rewrote (email NULL); a replica that has applied touch N
-- reloads the customers and products of every touch above N. SQLite has one
-- writer at a time, so sequences are assigned as touches are written and
-- increase in commit order.
CREATE TABLE entitlement_touches (
    sequence  INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    email     TEXT,
    product   TEXT
);
CREATE INDEX entitlement_touches_by_time ON entitlement_touches (at);
