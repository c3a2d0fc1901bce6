-- api_keys: one API key per integration, stored only as its SHA-256 hash (keys are 256-bit
-- random tokens, so a fast hash is as safe as a slow one) and a short hint to tell keys apart.
CREATE TABLE IF NOT EXISTS api_keys (
    integration_id TEXT NOT NULL PRIMARY KEY,
    key_hash TEXT NOT NULL,
    key_hint TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_by_hash ON api_keys (key_hash);
