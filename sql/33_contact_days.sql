-- contact_days: contact data per external queue, channel and local calendar day. Reads the day
-- sums stored with each fact file (sql/summaries/contact_days.sql), not the intervals: a daily
-- roll-up over three years of 500 queues reads about half a million rows, not 52 million.
-- Mappings are per queue, not per interval, so views joining them here give the same result.
CREATE OR REPLACE VIEW contact_days AS
SELECT integration_id,
       external_queue_id,
       channel,
       day_local,
       CAST(SUM(offered) AS BIGINT) AS offered,
       CAST(SUM(answered) AS BIGINT) AS answered,
       CAST(SUM(abandoned) AS BIGINT) AS abandoned,
       SUM(handle_time_s) AS handle_time_s,
       CAST(SUM(answered_in_sl) AS BIGINT) AS answered_in_sl
FROM _contact_days
GROUP BY ALL;
