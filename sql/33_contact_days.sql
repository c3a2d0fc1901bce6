-- contact_days: contact data per external queue, channel and local calendar day. Reads the day
-- sums stored with each fact file (sql/summaries/contact_days.sql), not the intervals: a daily
-- roll-up over three years of 500 queues reads about half a million rows, not 52 million.
-- Mappings are per queue, not per interval, so views joining them here give the same result.
CREATE OR REPLACE VIEW contact_days AS
SELECT integration_id,
       external_queue_id,
       channel,
       day_local,
       SUM(offered) AS offered,
       SUM(answered) AS answered,
       SUM(abandoned) AS abandoned,
       SUM(handle_time_s) AS handle_time_s,
       SUM(answered_in_sl) AS answered_in_sl
FROM read_parquet('{warehouse}/facts/contact_days/*/*/*.parquet')
GROUP BY ALL;
