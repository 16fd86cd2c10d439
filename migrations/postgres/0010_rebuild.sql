-- Rebuild and previews walk what is stored a page at a time.
-- A policy preview walks one product's customers in email order; this index
-- serves that walk and every lookup the product-only index served.
CREATE INDEX entitlements_by_product_email ON entitlements (product, email);
DROP INDEX entitlements_by_product;
-- A rebuild reads order registrations and the clock's ticks in time order.
CREATE INDEX orders_by_registration ON orders (registered_at, id);
CREATE INDEX transitions_by_source ON transitions (source, at);
-- Every policy a product has had, from when: a rebuild derives each instant
-- under the policy then in force (the clock's expiries depend on the grace
-- period). Policies set before this migration count from their product's
-- creation.
CREATE TABLE policy_changes (
    product                  TEXT NOT NULL,
    at                       BIGINT NOT NULL,
    grace_period_seconds     BIGINT NOT NULL,
    suspended_access         BIGINT NOT NULL,
    canceled_access          TEXT NOT NULL,
    purchase_access_seconds  BIGINT,
    PRIMARY KEY (product, at)
);
INSERT INTO policy_changes (product, at, grace_period_seconds, suspended_access, canceled_access,
                            purchase_access_seconds)
SELECT key, created_at, grace_period_seconds, suspended_access, canceled_access,
       purchase_access_seconds
FROM products;
