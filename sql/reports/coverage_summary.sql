-- Per integration and data kind, what `coverage` counts from the history start on
-- (`wfm-etl demo` explains why the hours before the demo's window show as missing).
SELECT integration_id, data_kind, min(day_local) AS first_day,
       CAST(sum(expected_intervals) AS BIGINT) AS expected,
       CAST(sum(loaded_intervals) AS BIGINT) AS loaded,
       CAST(sum(missing_intervals) AS BIGINT) AS missing
FROM coverage
GROUP BY ALL
ORDER BY ALL
