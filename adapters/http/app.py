"""The HTTP adapter: aiohttp's low-level server hands every request to one handler, which
turns it into an API request and the API layer's answer into the HTTP response.

No web.Application: the API layer does the routing, and an Application with a single
catch-all route still cost ~18 us of CPU per request for its router, match info and request
machinery (bare servers, 64 connections: 58 against 40 us a request), ~9% of a single-value
PUT. What it did that we need is here instead: `Expect: 100-continue`, the body size limit
(through the request factory) and the gRPC channels' life cycle (in `serve`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import HttpVersion11, web
from opentelemetry import metrics, trace

from adapters.api.api import Api
from adapters.api.errors import ApiError, ExpectationFailed, PayloadTooLarge, error_response
from adapters.api.messages import ApiRequest, ApiResponse
from adapters.http.codec import JSON, decode_body, encode, response_format
from adapters.http.config import HttpSettings
from m2x.runtime.errors import DomainError
from m2x.runtime.logs import new_request_id, request_id
from m2x.runtime.telemetry import tracing_enabled

logger = logging.getLogger(__name__)

try:
    SERVER_VERSION = "m2x-platform/" + version("m2x-platform")
except PackageNotFoundError:  # running from a source tree that was never installed
    SERVER_VERSION = "m2x-platform/dev"

_tracer = trace.get_tracer("m2x.http")
_latency = metrics.get_meter("m2x.http").create_histogram(
    "http.server.duration", unit="ms", description="HTTP request latency"
)


def credential_of(request: web.BaseRequest) -> str | None:
    """The API key from X-M2X-KEY or `Authorization: Bearer <key>`."""
    key = request.headers.get("X-M2X-KEY")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _base_url(request: web.BaseRequest, settings: HttpSettings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if settings.trust_forwarded:
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
        host = request.headers.get("X-Forwarded-Host", request.host)
        return f"{scheme}://{host}"
    return f"{request.scheme}://{request.host}"


def _client_ip(request: web.BaseRequest, settings: HttpSettings) -> str:
    if settings.trust_forwarded and "X-Forwarded-For" in request.headers:
        return request.headers["X-Forwarded-For"].split(",", 1)[0].strip()
    return request.remote or ""


async def _continue(request: web.BaseRequest, expect: str) -> None:
    """Answer `Expect: 100-continue` before the body is read (curl, for one, sends it with
    large bodies and waits a second for the answer); other expectations are refused (RFC 9110)."""
    if request.version != HttpVersion11:
        return  # HTTP/1.0 has no interim answers: the client sends its body anyway
    if expect.lower() != "100-continue":
        raise ExpectationFailed(f"Unsupported expectation: {expect}.")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the response proper has not started
    await request.writer.drain()


class HttpAdapter:
    """Answers HTTP requests through the API layer."""

    def __init__(self, settings: HttpSettings, api: Api) -> None:
        self.settings = settings
        self.api = api

    def server(self) -> web.Server:
        """aiohttp's low-level server, its requests limited to `max_body_bytes` of body."""
        loop = asyncio.get_running_loop()
        max_body = self.settings.max_body_bytes

        def request_factory(message: Any, payload: Any, protocol: Any, writer: Any,
                            task: Any) -> web.BaseRequest:  # fmt: skip
            return web.BaseRequest(message, payload, protocol, writer, task, loop,
                                   client_max_size=max_body)  # fmt: skip

        handler = self.handle_traced if tracing_enabled() else self.handle
        return web.Server(handler, request_factory=request_factory, access_log=None)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        request_id.set(request.headers.get("X-Request-Id") or new_request_id())
        response = await self._answer(request)
        _latency.record((time.perf_counter() - started) * 1000, {"http.method": request.method})
        return response

    async def handle_traced(self, request: web.BaseRequest) -> web.StreamResponse:
        with _tracer.start_as_current_span(f"HTTP {request.method}", kind=trace.SpanKind.SERVER):
            return await self.handle(request)

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        settings, api = self.settings, self.api
        api_request = ApiRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            credential=credential_of(request),
            client=_client_ip(request, settings),
            base_url=_base_url(request, settings),
        )
        failure: DomainError | None = None
        fmt = JSON
        try:
            fmt = response_format(request.headers.get("Accept", ""))
            if expect := request.headers.get("Expect"):
                await _continue(request, expect)
            if request.body_exists:
                api_request.body = decode_body(
                    await self._read_body(request), request.content_type, request.charset,
                    api.body_type(request.method, request.path),
                )  # fmt: skip
        except ApiError as exc:
            failure = exc
        answer = await api.handle(api_request, failure)
        try:
            body, content_type = encode(answer, fmt, request.query, request.method)
        except ApiError as exc:  # e.g. a callback name that is not a JavaScript identifier
            error = error_response(exc)
            error.headers = {**answer.headers, **error.headers}
            answer = error
            body, content_type = encode(answer, JSON, {}, "POST")
        return _http_response(answer, body, content_type)

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(
                f"The request body is larger than {self.settings.max_body_bytes} bytes."
            ) from None


# Bodies up to this size are compressed on the event loop (at most ~0.6 ms here). aiohttp
# hands anything over 4 KiB to a thread pool, a hop that cost ~110-180 us of CPU and latency
# per response against ~55 us for compressing a 100-value list (5.4 KB) in place.
COMPRESS_INLINE_BYTES = 64 * 1024


def _http_response(answer: ApiResponse, body: bytes, content_type: str) -> web.Response:
    response = web.Response(status=answer.status, body=body if answer.status != 204 else None,
                            zlib_executor_size=COMPRESS_INLINE_BYTES)  # fmt: skip
    headers = response.headers
    if content_type:
        headers["Content-Type"] = content_type
    headers["X-M2X-VERSION"] = SERVER_VERSION
    headers["X-Request-Id"] = request_id.get()
    headers["Vary"] = "Accept, Accept-Encoding"
    headers.update(answer.headers)
    if len(body) > 1400:
        response.enable_compression()
    return response
