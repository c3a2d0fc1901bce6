"""The built-in simulator: deterministic contact and agent-status data, so the project runs
and is tested without any external system."""
