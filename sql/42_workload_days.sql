-- workload_days: workloads per channel and local calendar day (exact: sums, then AHT).
CREATE OR REPLACE VIEW workload_days AS
SELECT w.workload,
       c.channel,
       CAST(c.interval_start_local AS DATE) AS day_local,
       c.timezone,
       SUM(c.offered) AS offered,
       SUM(c.answered) AS answered,
       SUM(c.abandoned) AS abandoned,
       SUM(c.handle_time_s) AS handle_time_s,
       SUM(c.handle_time_s) / NULLIF(SUM(c.answered), 0) AS aht_s
FROM contact_intervals_mapped AS c
JOIN workloads AS w USING (destination_queue)
GROUP BY ALL;
