"""The ingestion service: pushed records (`vendor: api`) and real-time agent status.

`store` keeps landed records (SQLite by default, PostgreSQL when configured), `landing`
validates and lands them (the API every producer calls), `app` is the HTTP service,
`publisher` keeps the live views current, `pruning` removes what imports have read.
"""
