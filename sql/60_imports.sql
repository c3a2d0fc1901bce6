-- imports: the import log, one row per integration, data kind and UTC hour (the latest import
-- of that hour): when it ran, whether the hour was over by then (complete), rows written,
-- rejected and dropped as exact duplicates (kept once, not rejected). An hour imported with no
-- rows (a quiet night) is not a hole; an hour not here is.
-- An hour whose latest import failed keeps the values of its last successful import (the data
-- it still holds; imported_at is empty if it never loaded) and says why: failed_at, failure,
-- and failures, the attempts in a row that failed that same way. At 3 the gap sensor and the
-- schedule stop retrying it (docs/operations.md).
--
-- imports_of(log) reads the log from the relation named `log`: '_import_log' (every
-- integration's), or the view of one integration's log the catalog keeps beside it,
-- '"_import_log__<integration>.<data kind>"': the coverage check reads its own integration's
-- log that way, so what it reads does not grow with the other integrations' history. Files
-- written before a column existed read it as empty.

CREATE OR REPLACE MACRO imports_of(log) AS TABLE
SELECT integration_id, data_kind, table_name, partition_start, imported_at, complete,
       rows_written, rows_rejected, coalesce(rows_duplicate, 0) AS rows_duplicate, run_id,
       failed_at, failure, coalesce(failures, 0) AS failures
FROM query_table(log);

CREATE OR REPLACE VIEW imports AS
SELECT * FROM imports_of('_import_log');

-- failed_imports_of(log): the hours whose latest import failed, with the failure count and
-- the configuration it failed under: the coverage check names the hours no longer retried.
CREATE OR REPLACE MACRO failed_imports_of(log) AS TABLE
SELECT integration_id, data_kind, partition_start, failure, failures, failure_config
FROM query_table(log)
WHERE failures > 0;
