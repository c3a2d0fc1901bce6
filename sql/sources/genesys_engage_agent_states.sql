-- Genesys Info Mart summarized agent states (SM_RES_STATE_FACT) overlapping one import window.
-- Used by `vendor: genesys_engage` (etl/resources/sources/vendors/genesys_engage.py); not a
-- catalog view.
-- Each fact row is an accumulating snapshot of one state of one agent on one media: inserted
-- when the state begins (ACTIVE_FLAG = 1, END_TS a tentative date far ahead) and updated when it
-- ends. START_TS / END_TS are epoch seconds (UTC). An active state is returned open (end NULL);
-- a state that lasted less than a second (END_TS = START_TS) is left out.
-- Bound parameters: :window_start_epoch, :window_end_epoch, :agent_media (a MEDIA_NAME_CODE).
SELECT
    R.RESOURCE_NAME AS user_name,
    S.STATE_NAME AS state_name,
    S.STATE_TYPE AS state_type,
    F.START_TS AS start_ts,
    CASE WHEN F.ACTIVE_FLAG = 1 THEN NULL ELSE F.END_TS END AS end_ts,
    F.SM_RES_STATE_FACT_KEY AS fact_key
FROM SM_RES_STATE_FACT F
JOIN RESOURCE_STATE S ON S.RESOURCE_STATE_KEY = F.RESOURCE_STATE_KEY
JOIN RESOURCE_ R ON R.RESOURCE_KEY = F.RESOURCE_KEY
JOIN MEDIA_TYPE M ON M.MEDIA_TYPE_KEY = F.MEDIA_TYPE_KEY
WHERE F.START_TS < :window_end_epoch
  AND (F.END_TS > :window_start_epoch OR F.ACTIVE_FLAG = 1)
  AND (F.END_TS > F.START_TS OR F.ACTIVE_FLAG = 1)
  AND M.MEDIA_NAME_CODE = :agent_media
  AND R.RESOURCE_TYPE_CODE = 'AGENT'
ORDER BY R.RESOURCE_NAME, F.START_TS, F.SM_RES_STATE_FACT_KEY
