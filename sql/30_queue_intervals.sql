-- queue_intervals: destination-queue level at the integrations' own intervals, with local time.
-- Mappings are joined at query time, so remapping never needs a re-import.
CREATE OR REPLACE VIEW queue_intervals AS
SELECT destination_queue,
       channel,
       interval_start,
       interval_start_local,
       timezone,
       interval_minutes,
       CAST(SUM(offered) AS BIGINT) AS offered,
       CAST(SUM(answered) AS BIGINT) AS answered,
       CAST(SUM(abandoned) AS BIGINT) AS abandoned,
       SUM(handle_time_s) AS handle_time_s,
       SUM(handle_time_s) / NULLIF(SUM(answered), 0)::DOUBLE AS aht_s,
       SUM(talk_time_s) AS talk_time_s,
       SUM(hold_time_s) AS hold_time_s,
       SUM(acw_time_s) AS acw_time_s,
       CAST(SUM(answered_in_sl) AS BIGINT) AS answered_in_sl
FROM contact_intervals_mapped
GROUP BY ALL;
