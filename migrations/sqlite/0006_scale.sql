-- Every list filter and every periodic job reads through an index.

-- The clock: active subscriptions whose window (period end plus grace) has
-- ended, found without a scan.
CREATE INDEX entitlements_lapsing ON entitlements (source_kind, state, access_until);

-- Filters of the admin lists, newest first.
CREATE INDEX deliveries_by_outcome ON deliveries (outcome, id);
CREATE INDEX subscriptions_by_product ON subscriptions (product, id);
CREATE INDEX subscriptions_by_state ON subscriptions (state, id);
CREATE INDEX subscriptions_by_integration ON subscriptions (integration, id);
CREATE INDEX orders_by_state ON orders (state, id);
CREATE INDEX orders_by_integration ON orders (integration, id);

-- Raw bodies are kept ENTITLED_DELIVERY_RETENTION_DAYS; the row, its outcome
-- and its attempts stay. When the body was dropped (NULL: it is kept).
ALTER TABLE deliveries ADD COLUMN body_dropped_at INTEGER;
CREATE INDEX deliveries_by_received ON deliveries (received_at);
