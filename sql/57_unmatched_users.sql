-- unmatched_users: user identifiers seen in agent-status data that match no employee
-- identifier (exactly: case and spaces count), with when they were first and last seen, how
-- many segments and seconds they have, and the mapped identifiers of the same integration
-- that differ only in case or surrounding spaces (a likely typo in either place).
CREATE OR REPLACE VIEW unmatched_users AS
WITH unmatched AS (
    SELECT s.integration_id,
           s.user_identifier,
           min(s.start_utc) AS first_seen,
           max(s.end_utc) AS last_seen,
           count(DISTINCT s.segment_start_utc) AS segments,
           sum(s.seconds) AS seconds
    FROM agent_status_segments AS s
    ANTI JOIN employee_identifiers AS ei USING (integration_id, user_identifier)
    GROUP BY ALL
),
lookalikes AS (
    SELECT u.integration_id,
           u.user_identifier,
           list(DISTINCT ei.user_identifier ORDER BY ei.user_identifier) AS similar_identifiers
    FROM unmatched AS u
    JOIN employee_identifiers AS ei
      ON ei.integration_id = u.integration_id
     AND lower(trim(ei.user_identifier)) = lower(trim(u.user_identifier))
    GROUP BY ALL
)
SELECT u.integration_id, u.user_identifier, u.first_seen, u.last_seen, u.segments, u.seconds,
       COALESCE(s.similar_identifiers, []) AS similar_identifiers
FROM unmatched AS u
LEFT JOIN lookalikes AS s USING (integration_id, user_identifier);
