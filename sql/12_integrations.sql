-- integrations: every integration that ever imported data, with its timezone and interval.
-- Kept after an integration is removed from the config, so its data stays queryable.
CREATE OR REPLACE VIEW integrations AS
SELECT integration_id, name, vendor, delivery, interval_minutes, timezone, history_start,
       revision_window_hours, data, updated_at
FROM _integrations;
