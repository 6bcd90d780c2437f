"""Server and client interceptors: request ids, trace context, latency, error mapping.

Server side, every handler is wrapped so that a DomainError becomes its gRPC status (through
m2x.runtime.grpc_status), an unexpected exception becomes INTERNAL with the details logged (never
sent), and each call's latency is recorded. Trace context travels as W3C headers in metadata and
is only extracted or injected when tracing is on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace

from m2x.runtime.errors import DomainError
from m2x.runtime.grpc_status import abort_with
from m2x.runtime.logs import request_id
from m2x.runtime.telemetry import tracing_enabled

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary and server-streaming handlers of one component's server."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.tracer = trace.get_tracer("m2x.grpc.server")
        self.latency = metrics.get_meter("m2x.grpc").create_histogram(
            "rpc.server.duration", unit="ms", description="gRPC server call latency"
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        metadata = dict(details.invocation_metadata or ())
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, metadata, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, metadata, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _enter(self, method: str, metadata: dict[str, Any]) -> tuple[Any, Any]:
        request_id.set(str(metadata.get(REQUEST_ID_HEADER, "")))
        if not tracing_enabled():
            return None, None
        token = otel_context.attach(propagate.extract(metadata))
        span = self.tracer.start_span(method, kind=trace.SpanKind.SERVER)
        return token, trace.use_span(span, end_on_exit=True)

    async def _fail(self, context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
        if isinstance(exc, DomainError):
            await abort_with(context, exc)
        logger.exception("unhandled error in %s", method)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def _wrap_unary(self, method: str, metadata: dict[str, Any], inner: Any) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            token, scope = self._enter(method, metadata)
            try:
                if scope is None:
                    return await inner(request, context)
                with scope:
                    return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, method, exc)
            finally:
                if token is not None:
                    otel_context.detach(token)
                elapsed_ms = (time.perf_counter() - started) * 1000
                self.latency.record(elapsed_ms, {"rpc.method": method})
                if logger.isEnabledFor(logging.DEBUG):  # one line per call only when asked for
                    logger.debug("rpc %s took %.2f ms", method, elapsed_ms)

        return unary

    def _wrap_stream(self, method: str, metadata: dict[str, Any], inner: Any) -> Any:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request_id.set(str(metadata.get(REQUEST_ID_HEADER, "")))
            try:
                async for item in inner(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, method, exc)

        return stream


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives every unary call a deadline and forwards the request id and trace context."""

    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        timeout = details.timeout if details.timeout is not None else self.default_timeout
        metadata = list(details.metadata or ())
        rid = request_id.get()
        if rid:
            metadata.append((REQUEST_ID_HEADER, rid))
        if tracing_enabled():
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            metadata.extend(carrier.items())
        details = grpc.aio.ClientCallDetails(
            details.method,
            timeout,
            grpc.aio.Metadata(*metadata),
            details.credentials,
            details.wait_for_ready,
        )
        return await continuation(details, request)
