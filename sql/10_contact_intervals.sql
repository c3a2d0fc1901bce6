-- contact_intervals: one row per integration, external queue, channel and interval start (UTC).
-- Sums and counts only; averages are derived in the views (AHT = handle_time_s / answered).
CREATE OR REPLACE VIEW contact_intervals AS
SELECT *
FROM _contact_intervals;
