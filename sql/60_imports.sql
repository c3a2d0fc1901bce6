-- imports: the import log, one row per integration, data kind and UTC hour (the latest import
-- of that hour): when it ran, whether the hour was over by then (complete), rows written and
-- rejected. An hour imported with no rows (a quiet night) is not a hole; an hour not here is.
--
-- imports_of(log) reads the log from the relation named `log`: '_import_log' (every
-- integration's), or the view of one integration's log the catalog keeps beside it,
-- '"_import_log__<integration>.<data kind>"': the coverage check reads its own integration's
-- log that way, so what it reads does not grow with the other integrations' history.

CREATE OR REPLACE MACRO imports_of(log) AS TABLE
SELECT integration_id, data_kind, table_name, partition_start, imported_at, complete,
       rows_written, rows_rejected, run_id
FROM query_table(log);

CREATE OR REPLACE VIEW imports AS
SELECT * FROM imports_of('_import_log');
