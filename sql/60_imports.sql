-- imports: the import log, one row per integration, data kind and UTC hour (the latest import
-- of that hour): when it ran, whether the hour was over by then (complete), rows written and
-- rejected. An hour imported with no rows (a quiet night) is not a hole; an hour not here is.
--
-- import_log_files(): where the log of every integration lies. imports_of(files) reads the
-- log from the given files: the coverage check passes its own integration's files, so
-- what it reads does not grow with the other integrations' history (every integration's log
-- is a file per month a history run wrote whole and per day of the months ticks wrote).
CREATE OR REPLACE MACRO import_log_files() AS '{warehouse}/facts/import_log/*/*/*.parquet';

CREATE OR REPLACE MACRO imports_of(files) AS TABLE
SELECT integration_id, data_kind, table_name, partition_start, imported_at, complete,
       rows_written, rows_rejected, run_id
FROM read_parquet(files);

CREATE OR REPLACE VIEW imports AS
SELECT * FROM imports_of(import_log_files());
