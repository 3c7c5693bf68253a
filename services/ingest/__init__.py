"""Feature ingest worker: consumes ``events`` and updates the Redis online store."""
