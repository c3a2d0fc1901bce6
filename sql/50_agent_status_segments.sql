-- agent_status_segments: which state (external activity) each agent was in, from when to when,
-- per integration and user identifier (exactly as the source delivered it: case and spaces
-- count). Segments are split at UTC hours so each hourly partition owns its rows;
-- segment_start_utc / segment_end_utc give the whole segment as delivered. is_open marks the
-- piece of a state still going on at import time: its end_utc is the import time (or the
-- window end), and the next import of that hour extends or closes it.
CREATE OR REPLACE VIEW agent_status_segments AS
SELECT integration_id,
       user_identifier,
       external_activity,
       start_utc,
       end_utc,
       epoch(end_utc - start_utc) AS seconds,
       is_open,
       segment_start_utc,
       segment_end_utc
FROM _agent_status_segments;
