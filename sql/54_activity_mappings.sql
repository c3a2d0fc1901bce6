-- activity_mappings: external activity (per integration, matched exactly) -> WFM activity,
-- with a free-text classification, from mappings/activity_mappings.csv.
CREATE OR REPLACE VIEW activity_mappings AS
SELECT integration_id, external_activity, activity_id,
       NULLIF(classification, '') AS classification
FROM _activity_mappings;
