-- workloads: groups of destination queues, from mappings/workloads.csv.
CREATE OR REPLACE VIEW workloads AS
SELECT workload, destination_queue
FROM _workloads;
