-- The inputs journal (DESIGN.md "Rebuild and previews"): one row per input
-- that took effect, appended as the last statement of its transaction, after
-- every lock it takes. Two inputs that touch the same thing take turns, so the
-- later one's row is written after the earlier one committed: ordered by id,
-- the journal is the order in which the live service applied them, on both
-- engines and whatever the number of writers and replicas. A rebuild replays it
-- in that order.
--   kind      delivery, registration, replay, expiry (the clock), policy
--   subject   the delivery id (delivery, replay), order id (registration),
--             subscription id (expiry) or product key (policy)
--   at        when it took effect (a delivery: when it was received)
CREATE TABLE inputs (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    at        BIGINT NOT NULL
);

-- What was recorded before the journal existed, in the order the rebuild
-- used to merge it: by instant, deliveries first at the same instant, then
-- policies, registrations, replays and the clock's expiries.
INSERT INTO inputs (kind, subject, at)
SELECT kind, subject, at FROM (
    SELECT 'delivery' AS kind, id AS subject, received_at AS at, 0 AS rank FROM deliveries
    UNION ALL
    SELECT 'policy', product, at, 1 FROM policy_changes
    UNION ALL
    SELECT 'registration', id, registered_at, 2 FROM orders WHERE registered_at IS NOT NULL
    UNION ALL
    SELECT 'replay', delivery_id, at, 3 FROM delivery_attempts WHERE trigger = 'replay'
    UNION ALL
    SELECT 'expiry', subject_id, at, 4 FROM transitions
    WHERE source = 'clock' AND subject_kind = 'subscription' AND outcome = 'applied'
) AS recorded
ORDER BY at, rank, subject;
