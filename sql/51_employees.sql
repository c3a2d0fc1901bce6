-- employees: the people WFM plans, from mappings/employees.csv.
CREATE OR REPLACE VIEW employees AS
SELECT employee_id, name
FROM _employees;
