-- Genesys Info Mart queue intervals at the sub-hour grain (Reporting and Analytics Aggregates
-- view AG2_QUEUE_SUBHR), for one import window. Used by `vendor: genesys_engage`
-- (etl/resources/sources/vendors/genesys_engage.py); not a catalog view.
-- The view has one row per 15-minute DATE_TIME interval, queue (RESOURCE_KEY), media type,
-- interaction type and resource group combination; counts and durations are attributed to the
-- interval in which the interactions entered the queue. Rows are selected and keyed on
-- DATE_TIME_KEY, the UTC-equivalent start of the interval in epoch seconds, never on the
-- DATE_TIME dimension's local CAL_DATE, which repeats when the calendar's clocks go back.
-- Bound parameters: :window_start_epoch, :window_end_epoch, :media (MEDIA_NAME_CODEs),
-- :queues (queue RESOURCE_NAMEs), :all_queues (1: every queue, :queues ignored).
-- Handle time = engage (talk) + hold + wrap (after-call work) time of accepted interactions.
SELECT
    Q.RESOURCE_NAME AS external_queue_id,
    M.MEDIA_NAME_CODE AS channel,
    A.DATE_TIME_KEY AS interval_start,
    SUM(A.ENTERED) AS offered,
    SUM(A.ACCEPTED_AGENT) AS answered,
    SUM(A.ABANDONED) AS abandoned,
    SUM(A.ENGAGE_TIME) + SUM(A.HOLD_TIME) + SUM(A.WRAP_TIME) AS handle_time,
    SUM(A.ENGAGE_TIME) AS talk_time,
    SUM(A.HOLD_TIME) AS hold_time,
    SUM(A.WRAP_TIME) AS acw_time,
    SUM(A.ACCEPTED_AGENT_THR) AS answered_in_sl,
    MIN(D.CAL_DATE) AS calendar_time
FROM AG2_QUEUE_SUBHR A
JOIN RESOURCE_ Q ON Q.RESOURCE_KEY = A.RESOURCE_KEY
JOIN MEDIA_TYPE M ON M.MEDIA_TYPE_KEY = A.MEDIA_TYPE_KEY
JOIN INTERACTION_TYPE I ON I.INTERACTION_TYPE_KEY = A.INTERACTION_TYPE_KEY
LEFT JOIN DATE_TIME D ON D.DATE_TIME_KEY = A.DATE_TIME_KEY
WHERE A.DATE_TIME_KEY >= :window_start_epoch
  AND A.DATE_TIME_KEY < :window_end_epoch
  AND I.INTERACTION_TYPE_CODE = 'INBOUND'
  AND M.MEDIA_NAME_CODE IN :media
  AND (:all_queues = 1 OR Q.RESOURCE_NAME IN :queues)
GROUP BY Q.RESOURCE_NAME, M.MEDIA_NAME_CODE, A.DATE_TIME_KEY
ORDER BY A.DATE_TIME_KEY, Q.RESOURCE_NAME, M.MEDIA_NAME_CODE
