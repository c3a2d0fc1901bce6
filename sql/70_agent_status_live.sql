-- agent_status_live: real-time agent status, today's segments so far, per integration's
-- local day, seconds after they were pushed (or streamed), before any hourly import. Each
-- row is a segment as delivered (not split at hours); end_utc is empty while the agent is
-- still in the state, and seconds counts up to now then. Employees and WFM activities are
-- joined at query time like agent_activity, but left-joined: an agent matched to no employee
-- is shown with an empty employee_id. The hourly import writes the same segments into
-- agent_status_segments; this view only ever shows today.
CREATE OR REPLACE VIEW agent_status_live AS
WITH live AS (
    SELECT *
    FROM _agent_status_live
    WHERE day_local = CAST(timezone(timezone, now()) AS DATE)
)
SELECT s.integration_id,
       s.user_identifier,
       ei.employee_id,
       e.name AS employee_name,
       COALESCE(m.activity_id, 1) AS activity_id,
       a.name AS activity_name,
       s.external_activity,
       s.start_utc,
       s.end_utc,
       s.end_utc IS NULL AS is_open,
       timezone(s.timezone, s.start_utc) AS start_local,
       timezone(s.timezone, s.end_utc) AS end_local,
       epoch(COALESCE(s.end_utc, now()) - s.start_utc) AS seconds,
       s.timezone,
       s.landed_at,
       s.published_at
FROM live AS s
LEFT JOIN employee_identifiers AS ei USING (integration_id, user_identifier)
LEFT JOIN employees AS e USING (employee_id)
LEFT JOIN activity_mappings AS m USING (integration_id, external_activity)
LEFT JOIN activities AS a ON a.activity_id = COALESCE(m.activity_id, 1);
