-- landing_pruned: per integration and data kind, the UTC hours whose landed records were
-- deleted after an import that saw all of them. Re-importing such an hour would read only
-- what landed since, so the import refuses it and the door refuses records that only touch
-- pruned hours.
CREATE TABLE IF NOT EXISTS landing_pruned (
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    hour_us BIGINT NOT NULL,
    PRIMARY KEY (integration_id, kind, hour_us)
);
