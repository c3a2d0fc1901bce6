"""Universal sources: CSV files in a drop folder and SQL queries against the customer's
database (vendor presets build on them)."""
