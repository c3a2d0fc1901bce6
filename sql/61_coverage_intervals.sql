-- coverage_intervals: every interval each integration should have delivered, per data kind,
-- from its history start to its last import, with its state:
--   loaded      its hour was imported after the interval had ended
--   incomplete  its hour was last imported before the interval ended (re-imported later by
--               the schedule's revision window or the gap sensor)
--   missing     its hour was never imported
-- Intervals follow the integration's own grid in its local time (a 60-minute integration in
-- Asia/Kolkata has intervals starting at :30 UTC); times are UTC unless named _local.
-- coverage_intervals_of(log): the same from the import log named (see imports_of);
-- with only_holes, only the hours that can hold an interval not loaded (no log row, or
-- imported before their last interval could end), which is all coverage_gaps needs.
CREATE OR REPLACE MACRO coverage_intervals_of(log, only_holes := false) AS TABLE
WITH kinds AS (
    SELECT l.integration_id, l.data_kind, max(l.imported_at) AS last_import
    FROM imports_of(log) AS l
    GROUP BY ALL
),
hours AS (
    SELECT k.integration_id, k.data_kind, k.last_import, i.interval_minutes, i.timezone,
           unnest(generate_series(i.history_start, k.last_import, INTERVAL 1 HOUR)) AS hour_start
    FROM kinds AS k
    JOIN integrations AS i USING (integration_id)
),
wanted AS (
    SELECT h.*
    FROM hours AS h
    WHERE NOT only_holes OR NOT EXISTS (
        SELECT 1
        FROM imports_of(log) AS l
        WHERE l.integration_id = h.integration_id
          AND l.data_kind = h.data_kind
          AND l.partition_start = h.hour_start
          -- an hour's last interval starts by :45 and ends interval_minutes later
          AND l.imported_at >= h.hour_start + to_minutes(45 + h.interval_minutes)
    )
),
grid AS (
    SELECT h.*, h.hour_start + to_minutes(q.quarter * 15) AS interval_start
    FROM wanted AS h
    CROSS JOIN (SELECT unnest([0, 1, 2, 3]) AS quarter) AS q
),
expected AS (
    SELECT *,
           interval_start + to_minutes(interval_minutes) AS interval_end,
           timezone(timezone, interval_start) AS interval_start_local
    FROM grid
    WHERE (hour(timezone(timezone, interval_start)) * 60
           + minute(timezone(timezone, interval_start))) % interval_minutes = 0
)
SELECT e.integration_id,
       e.data_kind,
       e.interval_start,
       e.interval_end,
       e.interval_start_local,
       e.timezone,
       e.interval_minutes,
       e.hour_start AS partition_start,
       l.imported_at,
       CASE
           WHEN l.imported_at IS NULL THEN 'missing'
           WHEN l.imported_at < e.interval_end THEN 'incomplete'
           ELSE 'loaded'
       END AS status
FROM expected AS e
LEFT JOIN imports_of(log) AS l
    ON l.integration_id = e.integration_id
    AND l.data_kind = e.data_kind
    AND l.partition_start = e.hour_start
WHERE e.interval_end <= e.last_import;

CREATE OR REPLACE VIEW coverage_intervals AS
SELECT * FROM coverage_intervals_of('_import_log');
