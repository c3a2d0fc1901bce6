-- coverage_gaps: runs of consecutive intervals that are not loaded (missing or incomplete),
-- per integration and data kind: what the gap sensor re-imports and the coverage check names.
-- coverage_gaps_of(log): the same from the import log named (see imports_of).
CREATE OR REPLACE MACRO coverage_gaps_of(log) AS TABLE
WITH holes AS (
    SELECT integration_id, data_kind, interval_minutes, interval_start, interval_end, status,
           lag(interval_end) OVER (PARTITION BY integration_id, data_kind ORDER BY interval_start)
               AS previous_end
    FROM coverage_intervals_of(log, only_holes := true)
    WHERE status <> 'loaded'
),
islands AS (
    SELECT *,
           sum(CASE WHEN previous_end = interval_start THEN 0 ELSE 1 END)
               OVER (PARTITION BY integration_id, data_kind ORDER BY interval_start) AS island
    FROM holes
)
SELECT integration_id,
       data_kind,
       min(interval_start) AS gap_start,
       max(interval_end) AS gap_end,
       any_value(interval_minutes) AS interval_minutes,
       count(*) AS intervals,
       count(*) FILTER (WHERE status = 'incomplete') AS incomplete_intervals
FROM islands
GROUP BY integration_id, data_kind, island;

CREATE OR REPLACE VIEW coverage_gaps AS
SELECT * FROM coverage_gaps_of('_import_log');
