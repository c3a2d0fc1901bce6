-- queue_days: contact data per destination queue, channel and local calendar day (exact).
CREATE OR REPLACE VIEW queue_days AS
SELECT COALESCE(m.destination_queue, d.integration_id || '/' || d.external_queue_id)
           AS destination_queue,
       d.channel,
       d.day_local,
       i.timezone,
       CAST(SUM(d.offered) AS BIGINT) AS offered,
       CAST(SUM(d.answered) AS BIGINT) AS answered,
       CAST(SUM(d.abandoned) AS BIGINT) AS abandoned,
       SUM(d.handle_time_s) AS handle_time_s,
       SUM(d.handle_time_s) / NULLIF(SUM(d.answered), 0)::DOUBLE AS aht_s,
       CAST(SUM(d.answered_in_sl) AS BIGINT) AS answered_in_sl
FROM contact_days AS d
LEFT JOIN integrations AS i USING (integration_id)
LEFT JOIN queue_mappings AS m USING (integration_id, external_queue_id)
GROUP BY ALL;
