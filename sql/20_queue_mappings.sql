-- queue_mappings: external queue -> destination queue, from mappings/queue_mappings.csv.
-- A queue without a mapping is its own destination queue: '<integration_id>/<external_queue_id>'.
CREATE OR REPLACE VIEW queue_mappings AS
SELECT integration_id, external_queue_id, destination_queue
FROM _queue_mappings;
