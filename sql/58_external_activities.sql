-- external_activities: every external activity per integration, seen in agent-status data or
-- listed in activity_mappings, and the WFM activity it counts as now (unmapped: 1, Present).
-- A mapping never seen in the data (seen = false) is often a spelling difference.
CREATE OR REPLACE VIEW external_activities AS
WITH seen AS (
    SELECT integration_id,
           external_activity,
           min(start_utc) AS first_seen,
           max(end_utc) AS last_seen,
           count(DISTINCT (user_identifier, segment_start_utc)) AS segments,
           sum(seconds) AS seconds
    FROM agent_status_segments
    GROUP BY ALL
)
SELECT integration_id,
       external_activity,
       COALESCE(m.activity_id, 1) AS activity_id,
       a.name AS activity_name,
       m.classification,
       m.activity_id IS NOT NULL AS mapped,
       s.integration_id IS NOT NULL AS seen,
       s.first_seen,
       s.last_seen,
       COALESCE(s.segments, 0) AS segments,
       COALESCE(s.seconds, 0) AS seconds
FROM seen AS s
FULL JOIN activity_mappings AS m USING (integration_id, external_activity)
LEFT JOIN activities AS a ON a.activity_id = COALESCE(m.activity_id, 1);
