-- rejected_rows: the quarantine. Every row a source delivered that broke a rule, as it came,
-- with where it came from, every rule it broke and the run that rejected it.
CREATE OR REPLACE VIEW rejected_rows AS
SELECT integration_id, data_kind, partition_key, source_ref, row_json, rules, run_id, rejected_at
FROM _rejected_rows;
