"""The runtime every service and adapter shares: settings, logs, telemetry, gRPC, ClickHouse."""
