"""The transport-neutral M2X API: route table, auth, rate limits, validation, error bodies."""
