"""Storage service: devices, streams, values, locations, metadata and request logs."""
