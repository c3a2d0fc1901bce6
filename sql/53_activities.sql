-- activities: WFM activities, from mappings/activities.csv. Activity 1 is "Present": what an
-- unmapped external activity counts as. It is always there, even if the file leaves it out.
CREATE OR REPLACE VIEW activities AS
WITH listed AS (
    SELECT activity_id, name FROM _activities
)
SELECT activity_id, name FROM listed
UNION ALL
SELECT 1 AS activity_id, 'Present' AS name
WHERE NOT EXISTS (SELECT 1 FROM listed WHERE activity_id = 1);
