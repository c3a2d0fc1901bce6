-- contact_days: contact data per external queue, channel and local calendar day. Summing
-- before the mappings are joined keeps day-level views fast over years of intervals (mappings
-- are per queue, not per interval, so the result is the same).
CREATE OR REPLACE VIEW contact_days AS
SELECT integration_id,
       external_queue_id,
       channel,
       CAST(interval_start_local AS DATE) AS day_local,
       SUM(offered) AS offered,
       SUM(answered) AS answered,
       SUM(abandoned) AS abandoned,
       SUM(handle_time_s) AS handle_time_s,
       SUM(answered_in_sl) AS answered_in_sl
FROM contact_intervals
GROUP BY ALL;
