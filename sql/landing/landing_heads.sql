-- landing_heads: per integration and data kind, a version counted up by every landed batch
-- and when the last record landed: the live views' publisher and the freshness sensor read it.
CREATE TABLE IF NOT EXISTS landing_heads (
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    last_landed_at_us BIGINT NOT NULL,
    PRIMARY KEY (integration_id, kind)
);
