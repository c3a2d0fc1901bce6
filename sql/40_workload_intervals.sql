-- workload_intervals: destination queues grouped into workloads, per channel and interval.
CREATE OR REPLACE VIEW workload_intervals AS
SELECT w.workload,
       q.channel,
       q.interval_start,
       q.interval_start_local,
       q.timezone,
       q.interval_minutes,
       SUM(q.offered) AS offered,
       SUM(q.answered) AS answered,
       SUM(q.abandoned) AS abandoned,
       SUM(q.handle_time_s) AS handle_time_s,
       SUM(q.handle_time_s) / NULLIF(SUM(q.answered), 0) AS aht_s
FROM queue_intervals AS q
JOIN workloads AS w USING (destination_queue)
GROUP BY ALL;
