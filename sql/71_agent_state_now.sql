-- agent_state_now: each agent's current state, from agent_status_live: the latest segment of
-- today per integration and user identifier, with the employee, the WFM activity and since
-- when. is_open is false when the latest record closed the state and nothing newer arrived
-- (until_utc says when); seconds_in_state counts up to now while it is open.
CREATE OR REPLACE VIEW agent_state_now AS
SELECT integration_id,
       user_identifier,
       employee_id,
       employee_name,
       activity_id,
       activity_name,
       external_activity,
       start_utc AS since_utc,
       start_local AS since_local,
       seconds AS seconds_in_state,
       is_open,
       end_utc AS until_utc,
       landed_at
FROM agent_status_live
QUALIFY row_number() OVER (PARTITION BY integration_id, user_identifier ORDER BY start_utc DESC) = 1;
