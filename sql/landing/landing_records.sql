-- landing_records: the latest landed version of every pushed record, per integration, data
-- kind and key (contacts: queue and channel; agent status: user identifier), by start time.
-- A re-sent record replaces the earlier version in place (upsert), so an import reads each
-- key once. Times are microseconds since 1970-01-01 UTC; an open agent-status segment has
-- end_us = 4611686018427387904 (2^62), so a window query is one range condition on end_us.
CREATE TABLE IF NOT EXISTS landing_records (
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_key TEXT NOT NULL,
    start_us BIGINT NOT NULL,
    end_us BIGINT NOT NULL,
    record TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    landed_at_us BIGINT NOT NULL,
    PRIMARY KEY (integration_id, kind, record_key, start_us)
);
CREATE INDEX IF NOT EXISTS landing_records_by_end ON landing_records (integration_id, kind, end_us);
CREATE INDEX IF NOT EXISTS landing_records_by_start ON landing_records (integration_id, kind, start_us);
CREATE INDEX IF NOT EXISTS landing_records_by_landing ON landing_records (integration_id, kind, landed_at_us);
