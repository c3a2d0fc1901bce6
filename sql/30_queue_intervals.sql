-- queue_intervals: destination-queue level at the integrations' own intervals, with local time.
-- Mappings are joined at query time, so remapping never needs a re-import.
CREATE OR REPLACE VIEW queue_intervals AS
SELECT COALESCE(m.destination_queue, c.integration_id || '/' || c.external_queue_id)
           AS destination_queue,
       c.channel,
       c.interval_start,
       timezone(i.timezone, c.interval_start) AS interval_start_local,
       i.timezone,
       c.interval_minutes,
       SUM(c.offered) AS offered,
       SUM(c.answered) AS answered,
       SUM(c.abandoned) AS abandoned,
       SUM(c.handle_time_s) AS handle_time_s,
       SUM(c.handle_time_s) / NULLIF(SUM(c.answered), 0) AS aht_s,
       SUM(c.talk_time_s) AS talk_time_s,
       SUM(c.hold_time_s) AS hold_time_s,
       SUM(c.acw_time_s) AS acw_time_s,
       SUM(c.answered_in_sl) AS answered_in_sl
FROM contact_intervals AS c
JOIN integrations AS i USING (integration_id)
LEFT JOIN queue_mappings AS m USING (integration_id, external_queue_id)
GROUP BY ALL;
