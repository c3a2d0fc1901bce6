-- queue_intervals_30: contact data rolled up to 30 local minutes per destination queue
-- (exact: sums, then AHT). Only intervals of 30 minutes or shorter roll up; buckets follow
-- local time, and the two repeated local hours of a DST fall-back stay apart (grouped by
-- their UTC start).
CREATE OR REPLACE VIEW queue_intervals_30 AS
SELECT destination_queue,
       channel,
       interval_start - (interval_start_local
           - time_bucket(INTERVAL 30 MINUTE, interval_start_local)) AS interval_start,
       time_bucket(INTERVAL 30 MINUTE, interval_start_local) AS interval_start_local,
       timezone,
       30 AS interval_minutes,
       CAST(SUM(offered) AS BIGINT) AS offered,
       CAST(SUM(answered) AS BIGINT) AS answered,
       CAST(SUM(abandoned) AS BIGINT) AS abandoned,
       SUM(handle_time_s) AS handle_time_s,
       SUM(handle_time_s) / NULLIF(SUM(answered), 0)::DOUBLE AS aht_s,
       CAST(SUM(answered_in_sl) AS BIGINT) AS answered_in_sl
FROM contact_intervals_mapped
WHERE interval_minutes <= 30
GROUP BY ALL;
