-- agent_activity_intervals: seconds per employee, WFM activity and 15-minute interval (UTC
-- start, and local start in the integration's timezone): what intraday adherence compares
-- with the plan. Every timezone offset in use is a multiple of 15 minutes, so these
-- intervals are 15-minute intervals in local time too.
CREATE OR REPLACE VIEW agent_activity_intervals AS
WITH pieces AS (
    SELECT *,
           unnest(generate_series(
               time_bucket(INTERVAL 15 MINUTE, start_utc),
               end_utc - INTERVAL 1 MICROSECOND,
               INTERVAL 15 MINUTE)) AS interval_start
    FROM agent_activity
)
SELECT employee_id,
       employee_name,
       integration_id,
       activity_id,
       activity_name,
       classification,
       interval_start,
       timezone(timezone, interval_start) AS interval_start_local,
       timezone,
       SUM(epoch(least(end_utc, interval_start + INTERVAL 15 MINUTE)
                 - greatest(start_utc, interval_start))) AS seconds
FROM pieces
GROUP BY ALL;
