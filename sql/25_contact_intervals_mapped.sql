-- contact_intervals_mapped: contact rows with their destination queue (mappings joined at
-- query time) and local interval start. The roll-up views aggregate this view once each.
CREATE OR REPLACE VIEW contact_intervals_mapped AS
SELECT COALESCE(m.destination_queue, c.integration_id || '/' || c.external_queue_id)
           AS destination_queue,
       c.integration_id,
       c.external_queue_id,
       c.channel,
       c.interval_start,
       c.interval_start_local,
       i.timezone,
       c.interval_minutes,
       c.offered,
       c.answered,
       c.abandoned,
       c.handle_time_s,
       c.talk_time_s,
       c.hold_time_s,
       c.acw_time_s,
       c.answered_in_sl
FROM contact_intervals AS c
LEFT JOIN integrations AS i USING (integration_id)
LEFT JOIN queue_mappings AS m USING (integration_id, external_queue_id);
