-- workload_intervals: destination queues grouped into workloads, per channel and interval.
CREATE OR REPLACE VIEW workload_intervals AS
SELECT w.workload,
       c.channel,
       c.interval_start,
       c.interval_start_local,
       c.timezone,
       c.interval_minutes,
       CAST(SUM(c.offered) AS BIGINT) AS offered,
       CAST(SUM(c.answered) AS BIGINT) AS answered,
       CAST(SUM(c.abandoned) AS BIGINT) AS abandoned,
       SUM(c.handle_time_s) AS handle_time_s,
       SUM(c.handle_time_s) / NULLIF(SUM(c.answered), 0)::DOUBLE AS aht_s
FROM contact_intervals_mapped AS c
JOIN workloads AS w USING (destination_queue)
GROUP BY ALL;
