"""The aiohttp application: every request goes through one handler into the API layer."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from opentelemetry import metrics, trace

from adapters.api.api import Api, Limits
from adapters.api.app import build_api
from adapters.api.backends import open_services
from adapters.api.errors import ApiError, PayloadTooLarge, error_response
from adapters.api.messages import ApiRequest, ApiResponse
from adapters.api.routes import RouteTable
from adapters.http.codec import JSON, decode_body, encode, response_format
from adapters.http.config import HttpSettings
from m2x.runtime.errors import DomainError
from m2x.runtime.logs import new_request_id, request_id
from m2x.runtime.telemetry import tracing_enabled

logger = logging.getLogger(__name__)

API: web.AppKey[Api] = web.AppKey("api", Api)
SETTINGS: web.AppKey[HttpSettings] = web.AppKey("settings", HttpSettings)

try:
    SERVER_VERSION = "m2x-platform/" + version("m2x-platform")
except PackageNotFoundError:  # running from a source tree that was never installed
    SERVER_VERSION = "m2x-platform/dev"

_tracer = trace.get_tracer("m2x.http")
_latency = metrics.get_meter("m2x.http").create_histogram(
    "http.server.duration", unit="ms", description="HTTP request latency"
)


def credential_of(request: web.Request) -> str | None:
    """The API key from X-M2X-KEY or `Authorization: Bearer <key>`."""
    key = request.headers.get("X-M2X-KEY")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _base_url(request: web.Request, settings: HttpSettings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if settings.trust_forwarded:
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
        host = request.headers.get("X-Forwarded-Host", request.host)
        return f"{scheme}://{host}"
    return f"{request.scheme}://{request.host}"


def _client_ip(request: web.Request, settings: HttpSettings) -> str:
    if settings.trust_forwarded and "X-Forwarded-For" in request.headers:
        return request.headers["X-Forwarded-For"].split(",", 1)[0].strip()
    return request.remote or ""


async def _read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"The request body is larger than {request.app[SETTINGS].max_body_bytes} bytes."
        ) from None


async def handle(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    request_id.set(request.headers.get("X-Request-Id") or new_request_id())
    response = await _answer(request)
    _latency.record((time.perf_counter() - started) * 1000, {"http.method": request.method})
    return response


async def handle_traced(request: web.Request) -> web.StreamResponse:
    with _tracer.start_as_current_span(f"HTTP {request.method}", kind=trace.SpanKind.SERVER):
        return await handle(request)


async def _answer(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
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
        if request.body_exists:
            api_request.body = decode_body(
                await _read_body(request), request.content_type, request.charset,
                request.app[API].body_type(request.method, request.path),
            )  # fmt: skip
    except ApiError as exc:
        failure = exc
    answer = await request.app[API].handle(api_request, failure)
    try:
        body, content_type = encode(answer, fmt, request.query, request.method)
    except ApiError as exc:  # e.g. a callback name that is not a JavaScript identifier
        error = error_response(exc)
        error.headers = {**answer.headers, **error.headers}
        answer = error
        body, content_type = encode(answer, JSON, {}, "POST")
    return _http_response(answer, body, content_type)


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


def create_app(settings: HttpSettings, routes: RouteTable | None = None) -> web.Application:
    """The HTTP adapter; gRPC channels open and close with the app (cleanup_ctx)."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings

    async def backends(app: web.Application) -> AsyncIterator[None]:
        async with open_services(
            settings.keys_address, settings.storage_address, settings.rpc_timeout,
            settings.principal_ttl, triggers_address=settings.triggers_address,
        ) as services:  # fmt: skip
            limits = Limits(
                settings.rate_limit_ip, settings.rate_limit_key, settings.rate_limit_device_writes
            )
            app[API] = build_api(services, limits, routes)
            yield

    app.cleanup_ctx.append(backends)
    # Telemetry is set up before the app is created; a span per request only when it traces.
    app.router.add_route("*", "/{tail:.*}", handle_traced if tracing_enabled() else handle)
    return app
