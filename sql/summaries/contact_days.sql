-- Day sums of one contact_intervals file (`facts`: the file's rows), stored beside it as
-- facts/contact_days/<integration>/<month>/<the fact file's name> and re-summed by the
-- contact_days view (a local day can straddle two UTC-day or UTC-month files). Written with every fact file, so day-level
-- queries over years read thousands of rows per queue instead of every interval.
SELECT integration_id,
       external_queue_id,
       channel,
       CAST(interval_start_local AS DATE) AS day_local,
       SUM(offered) AS offered,
       SUM(answered) AS answered,
       SUM(abandoned) AS abandoned,
       SUM(handle_time_s) AS handle_time_s,
       SUM(answered_in_sl) AS answered_in_sl
FROM facts
GROUP BY ALL
ORDER BY day_local, external_queue_id, channel
