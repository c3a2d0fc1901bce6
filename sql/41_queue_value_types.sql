-- queue_value_types: long form with the value types WFM users know ("Calls Offered",
-- "Calls Answered", "Calls Abandoned", "Calls Average Handling Time", "Chats Offered", ...).
CREATE OR REPLACE VIEW queue_value_types AS
WITH named AS (
    SELECT *,
           CASE channel WHEN 'social' THEN 'Social' ELSE upper(channel[1]) || channel[2:] END
               AS channel_label
    FROM queue_intervals
)
SELECT destination_queue, channel, interval_start, interval_start_local, interval_minutes,
       channel_label || ' ' || value_type AS value_type, value
FROM (
    SELECT destination_queue, channel, interval_start, interval_start_local, interval_minutes,
           channel_label,
           CAST(offered AS DOUBLE) AS "Offered",
           CAST(answered AS DOUBLE) AS "Answered",
           CAST(abandoned AS DOUBLE) AS "Abandoned",
           aht_s AS "Average Handling Time"
    FROM named
) UNPIVOT (value FOR value_type IN ("Offered", "Answered", "Abandoned", "Average Handling Time"));
