-- imports: the import log, one row per integration, data kind and UTC hour (the latest import
-- of that hour): when it ran, whether the hour was over by then (complete), rows written and
-- rejected. An hour imported with no rows (a quiet night) is not a hole; an hour not here is.
--
-- import_log_files(): the current files of every integration's log (a macro the catalog
-- generates with each version). imports_of(files) reads the log from the given files: the
-- coverage check passes its own integration's files, so what it reads does not grow with the
-- other integrations' history. Files written before a column was added read it as NULL.

CREATE OR REPLACE MACRO imports_of(files) AS TABLE
SELECT integration_id, data_kind, table_name, partition_start, imported_at, complete,
       rows_written, rows_rejected, run_id
FROM read_parquet(files, union_by_name = true);

CREATE OR REPLACE VIEW imports AS
SELECT * FROM imports_of(import_log_files());
