-- Plan changes in the history: the plan an event named, and the plan the
-- provider says it changed from (Zid's old_plan_name on upgrades).
ALTER TABLE transitions ADD COLUMN plan TEXT;
ALTER TABLE transitions ADD COLUMN previous_plan TEXT;
