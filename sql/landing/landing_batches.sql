-- landing_batches: one row per landed batch (request): its id (the Idempotency-Key header,
-- the body's meta.batchId, or a generated one), a hash of its body and the answer it got, so
-- a retried request with the same id is answered the same and lands nothing again.
CREATE TABLE IF NOT EXISTS landing_batches (
    integration_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    received_at_us BIGINT NOT NULL,
    status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (integration_id, batch_id)
);
CREATE INDEX IF NOT EXISTS landing_batches_by_time ON landing_batches (received_at_us);
