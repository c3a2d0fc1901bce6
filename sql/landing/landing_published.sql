-- landing_published: per integration, the landing version last published to the live views.
CREATE TABLE IF NOT EXISTS landing_published (
    integration_id TEXT NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL,
    published_at_us BIGINT NOT NULL
);
