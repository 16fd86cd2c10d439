-- Time-driven changes: for each (customer, product) with rows, the next
-- instant at which time alone may change its answer (a window's start, a
-- period's end, the end of its grace or of a purchase or grant). Writers of
-- entitlement rows set it in their transaction; the clock takes the timers
-- that are due (through answer_timers_due), appends the changes they bring
-- and sets each pair's next one (src/store/timers.rs). Pairs written before
-- this table existed are due at once: the first tick settles them.
CREATE TABLE answer_timers (
    email    TEXT NOT NULL,
    product  TEXT NOT NULL,
    due_at   BIGINT NOT NULL,
    PRIMARY KEY (email, product)
);
CREATE INDEX answer_timers_due ON answer_timers (due_at);
INSERT INTO answer_timers (email, product, due_at)
    SELECT DISTINCT email, product, 0 FROM entitlements;

-- Outbound webhooks (src/store/outbound.rs). An endpoint receives the
-- changes of every product (products NULL) or of those its JSON array lists.
-- After a rotation the previous secret still signs until previous_secret_until.
CREATE TABLE endpoints (
    id                     TEXT PRIMARY KEY,
    url                    TEXT NOT NULL,
    products               TEXT,
    enabled                INTEGER NOT NULL,
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  BIGINT,
    -- NULL: never tried; 1: the last attempt was a 2xx; 0: it failed.
    last_attempt_ok        INTEGER,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
-- One message per change per matching enabled endpoint, written in the
-- change's transaction (change_id), or one per test (type endpoint.test,
-- its body kept). Senders lease a message (lease_owner, lease_until) while
-- they try it, so each is tried by one replica at a time.
CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    endpoint         TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    type             TEXT NOT NULL,
    change_id        BIGINT,
    email            TEXT,
    product          TEXT,
    body             TEXT,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX messages_by_pair ON messages (endpoint, email, product, change_id);
CREATE INDEX messages_by_endpoint ON messages (endpoint, id);
CREATE INDEX messages_by_change ON messages (change_id);

-- Every attempt at a message, numbered from 1.
CREATE TABLE message_attempts (
    message      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    n            INTEGER NOT NULL,
    at           BIGINT NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (message, n)
);
