-- imports: the import log, one row per integration, data kind and UTC hour (the latest import
-- of that hour): when it ran, whether the hour was over by then (complete), rows written,
-- rejected and dropped as exact duplicates (kept once, not rejected). An hour imported with no
-- rows (a quiet night) is not a hole; an hour not here is.
-- An hour whose latest import failed keeps the values of its last successful import (the data
-- it still holds; imported_at is empty if it never loaded) and says why: failed_at, failure,
-- and failures, the attempts in a row that failed that same way. At 3 the gap sensor and the
-- schedule stop retrying it (docs/operations.md).
--
-- import_log_files(): where the log of every integration lies. imports_of(files) reads the
-- log from the given files: the coverage check passes its own integration's files, so
-- what it reads does not grow with the other integrations' history (every integration's log
-- is a file per month a history run wrote whole and per day of the months ticks wrote).
-- union_by_name: files written before a column existed read it as empty.
CREATE OR REPLACE MACRO import_log_files() AS '{warehouse}/facts/import_log/*/*/*.parquet';

CREATE OR REPLACE MACRO imports_of(files) AS TABLE
SELECT integration_id, data_kind, table_name, partition_start, imported_at, complete,
       rows_written, rows_rejected, coalesce(rows_duplicate, 0) AS rows_duplicate, run_id,
       failed_at, failure, coalesce(failures, 0) AS failures
FROM read_parquet(files, union_by_name = true);

CREATE OR REPLACE VIEW imports AS
SELECT * FROM imports_of(import_log_files());

-- failed_imports_of(files): the hours whose latest import failed, with the failure count and
-- the configuration it failed under: the coverage check names the hours no longer retried.
CREATE OR REPLACE MACRO failed_imports_of(files) AS TABLE
SELECT integration_id, data_kind, partition_start, failure, failures, failure_config
FROM read_parquet(files, union_by_name = true)
WHERE failures > 0;
