-- coverage: per integration, data kind and local day, the intervals expected (from the
-- history start to the last import), loaded, incomplete and missing (= not loaded, including
-- incomplete), and the rows rejected into the quarantine (counted on the local day their UTC
-- partition hour starts in). A day with missing_intervals = 0 is complete.
CREATE OR REPLACE VIEW coverage AS
WITH days AS (
    SELECT integration_id,
           data_kind,
           CAST(interval_start_local AS DATE) AS day_local,
           timezone,
           interval_minutes,
           count(*) AS expected_intervals,
           count(*) FILTER (WHERE status = 'loaded') AS loaded_intervals,
           count(*) FILTER (WHERE status = 'incomplete') AS incomplete_intervals,
           count(*) FILTER (WHERE status <> 'loaded') AS missing_intervals,
           min(interval_start) FILTER (WHERE status <> 'loaded') AS first_missing_utc
    FROM coverage_intervals
    GROUP BY ALL
),
kinds AS (
    SELECT DISTINCT integration_id, data_kind, table_name FROM imports
),
rejected AS (
    SELECT k.integration_id,
           k.data_kind,
           CAST(timezone(i.timezone, timezone('UTC', strptime(r.partition_key, '%Y-%m-%d-%H:%M')))
               AS DATE) AS day_local,
           count(*) AS rejected_rows
    FROM rejected_rows AS r
    JOIN kinds AS k ON k.integration_id = r.integration_id AND k.table_name = r.data_kind
    JOIN integrations AS i ON i.integration_id = r.integration_id
    GROUP BY ALL
)
SELECT d.integration_id,
       d.data_kind,
       d.day_local,
       d.timezone,
       d.interval_minutes,
       d.expected_intervals,
       d.loaded_intervals,
       d.incomplete_intervals,
       d.missing_intervals,
       d.first_missing_utc,
       COALESCE(r.rejected_rows, 0) AS rejected_rows
FROM days AS d
LEFT JOIN rejected AS r USING (integration_id, data_kind, day_local);
