-- What the warehouse holds per integration and table (`wfm-etl summary`, `wfm-etl demo`).
SELECT c.integration_id, 'contact_intervals' AS table_name, count(*) AS n,
       min(c.interval_start) AS first, max(c.interval_start) AS last
FROM contact_intervals c GROUP BY ALL
UNION ALL
SELECT s.integration_id, 'agent_status_segments', count(*), min(s.start_utc), max(s.start_utc)
FROM agent_status_segments s GROUP BY ALL
ORDER BY ALL
