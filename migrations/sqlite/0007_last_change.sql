-- A writer compares a pair's new answer with the last one the log holds for
-- it (what consumers last saw), found here: per pair, and per product for a
-- policy change.
CREATE INDEX changes_last_by_pair ON changes (product, email, id);
