-- imports: the import log, one row per integration, data kind and UTC hour (the latest import
-- of that hour): when it ran, whether the hour was over by then (complete), rows written and
-- rejected. An hour imported with no rows (a quiet night) is not a hole; an hour not here is.
CREATE OR REPLACE VIEW imports AS
SELECT integration_id, data_kind, table_name, partition_start, imported_at, complete,
       rows_written, rows_rejected, run_id
FROM read_parquet('{warehouse}/facts/import_log/*/*.parquet');
