"""The HTTP API: accepts jobs, publishes submit events, answers polls from Redis."""
