"""Backend services, one gRPC server and one ClickHouse database each."""
