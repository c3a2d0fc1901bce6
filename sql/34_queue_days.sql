-- queue_days: contact data per destination queue, channel and local calendar day (exact).
CREATE OR REPLACE VIEW queue_days AS
SELECT destination_queue,
       channel,
       CAST(interval_start_local AS DATE) AS day_local,
       timezone,
       SUM(offered) AS offered,
       SUM(answered) AS answered,
       SUM(abandoned) AS abandoned,
       SUM(handle_time_s) AS handle_time_s,
       SUM(handle_time_s) / NULLIF(SUM(answered), 0) AS aht_s,
       SUM(answered_in_sl) AS answered_in_sl
FROM contact_intervals_mapped
GROUP BY ALL;
