-- workload_days: workloads per channel and local calendar day (exact: sums, then AHT).
CREATE OR REPLACE VIEW workload_days AS
SELECT w.workload,
       q.channel,
       q.day_local,
       q.timezone,
       CAST(SUM(q.offered) AS BIGINT) AS offered,
       CAST(SUM(q.answered) AS BIGINT) AS answered,
       CAST(SUM(q.abandoned) AS BIGINT) AS abandoned,
       SUM(q.handle_time_s) AS handle_time_s,
       SUM(q.handle_time_s) / NULLIF(SUM(q.answered), 0)::DOUBLE AS aht_s
FROM queue_days AS q
JOIN workloads AS w USING (destination_queue)
GROUP BY ALL;
