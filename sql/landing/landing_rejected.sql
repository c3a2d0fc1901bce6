-- landing_rejected: records refused at the door, as they came, with every rule they broke.
-- The import of the hour they belong to (their own time, else the hour they arrived in)
-- hands them to rejected_rows with the rest of that hour's quarantine.
CREATE TABLE IF NOT EXISTS landing_rejected (
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    record_index INTEGER NOT NULL,
    partition_us BIGINT NOT NULL,
    source_ref TEXT NOT NULL,
    row_json TEXT NOT NULL,
    rules TEXT NOT NULL,
    received_at_us BIGINT NOT NULL,
    PRIMARY KEY (integration_id, batch_id, record_index)
);
CREATE INDEX IF NOT EXISTS landing_rejected_by_hour ON landing_rejected (integration_id, kind, partition_us);
