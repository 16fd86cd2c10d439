-- A previous secret an integration still accepts until `previous_secret_until`
-- (unix microseconds; DESIGN.md "Webhook ingress"): a provider's key rotation,
-- or a changed Zid Basic password, without a window of 401s. Both or neither.
ALTER TABLE integrations ADD COLUMN previous_secret TEXT;
ALTER TABLE integrations ADD COLUMN previous_secret_until BIGINT;
