-- agent_activity: agent status per employee and WFM activity, with UTC and local times.
-- Mappings are joined at query time: remapping an activity or adding an employee identifier
-- changes this view at once, with no re-import. An unmapped external activity counts as
-- activity 1, Present. Identifiers matched to no employee are in unmatched_users instead.
CREATE OR REPLACE VIEW agent_activity AS
SELECT ei.employee_id,
       e.name AS employee_name,
       s.integration_id,
       s.user_identifier,
       COALESCE(m.activity_id, 1) AS activity_id,
       a.name AS activity_name,
       m.classification,
       s.external_activity,
       m.activity_id IS NOT NULL AS activity_mapped,
       s.start_utc,
       s.end_utc,
       timezone(i.timezone, s.start_utc) AS start_local,
       timezone(i.timezone, s.end_utc) AS end_local,
       i.timezone,
       s.seconds,
       s.is_open
FROM agent_status_segments AS s
JOIN employee_identifiers AS ei USING (integration_id, user_identifier)
LEFT JOIN employees AS e USING (employee_id)
LEFT JOIN integrations AS i USING (integration_id)
LEFT JOIN activity_mappings AS m USING (integration_id, external_activity)
LEFT JOIN activities AS a ON a.activity_id = COALESCE(m.activity_id, 1);
