-- employee_identifiers: how an employee appears in each integration, from
-- mappings/employee_identifiers.csv: the employee id in that external system and the user
-- identifier (the extension) that agent-status data carries, matched exactly.
CREATE OR REPLACE VIEW employee_identifiers AS
SELECT employee_id, integration_id, NULLIF(external_employee_id, '') AS external_employee_id,
       user_identifier
FROM _employee_identifiers;
