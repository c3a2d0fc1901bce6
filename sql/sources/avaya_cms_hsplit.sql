-- Avaya CMS interval data per split/skill (table hsplit), for one import window.
-- Used by `vendor: avaya_cms` (etl/resources/sources/vendors/avaya_cms.py); not a catalog view.
-- Rows are selected and keyed on starttime_utc (epoch seconds), never on row_date/starttime:
-- the local start time repeats when clocks go back. Bound parameters: :window_start_epoch,
-- :window_end_epoch, :splits (a list), :acd (NULL = every ACD).
-- Handle time = ACD talk time + after-call work + hold time (see the module for the CMS items).
SELECT
    split AS external_queue_id,
    starttime_utc AS interval_start,
    intrvl AS interval_minutes,
    callsoffered AS offered,
    acdcalls AS answered,
    abncalls AS abandoned,
    acdtime + acwtime + holdtime AS handle_time,
    acdtime AS talk_time,
    holdtime AS hold_time,
    acwtime AS acw_time,
    acceptable AS answered_in_sl,
    row_date,
    starttime
FROM hsplit
WHERE starttime_utc >= :window_start_epoch
  AND starttime_utc < :window_end_epoch
  AND split IN :splits
  AND (:acd IS NULL OR acd = :acd)
ORDER BY starttime_utc, split
