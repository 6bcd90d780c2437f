"""gRPC channels to other components: deadlines, fast reconnects, request id and trace context."""

from __future__ import annotations

import grpc

from m2x.runtime.interceptors import ClientInterceptor

# A restarted service should be reachable again within a second, not after gRPC's default
# back-off of up to two minutes.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def open_channel(address: str, default_timeout: float = 5.0) -> grpc.aio.Channel:
    """A channel to `address` (host:port) whose unary calls default to `default_timeout` s."""
    return grpc.aio.insecure_channel(
        address, options=_CHANNEL_OPTIONS, interceptors=[ClientInterceptor(default_timeout)]
    )
