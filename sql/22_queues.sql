-- queues: every external queue an integration ever reported (never deleted) and the
-- destination queue it feeds now.
CREATE OR REPLACE VIEW queues AS
SELECT q.integration_id,
       q.external_queue_id,
       COALESCE(m.destination_queue, q.integration_id || '/' || q.external_queue_id)
           AS destination_queue,
       m.destination_queue IS NOT NULL AS mapped,
       q.first_seen,
       q.last_seen
FROM _queues AS q
LEFT JOIN queue_mappings AS m USING (integration_id, external_queue_id);
