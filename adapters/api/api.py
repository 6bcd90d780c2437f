"""The request pipeline every transport calls: route, authenticate, limit, authorize, handle."""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from adapters.api.context import Call, Services
from adapters.api.errors import MethodNotAllowed, RateLimited, error_response, internal_error
from adapters.api.messages import ApiRequest, ApiResponse
from adapters.api.principals import Principal
from adapters.api.ratelimit import RateLimiter, Verdict
from adapters.api.routes import WRITE_METHODS, Access, Endpoint, Match, RouteTable
from m2x.runtime.errors import DomainError, NotFound, PermissionDenied, Unauthenticated

logger = logging.getLogger(__name__)

DEVICE_PREFIX = "/v2/devices/"
# Paths whose route is remembered: matching walks every pattern of the path's length, which
# costs more than the rest of the pipeline of a small write.
ROUTE_CACHE = 8192
UNLIMITED = Verdict(True, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests per second (0 = unlimited), spec §1.11."""

    per_ip: int = 30
    per_key: int = 50
    per_device_writes: int = 10


class Api:
    def __init__(self, routes: RouteTable, services: Services, limits: Limits) -> None:
        """`routes` is complete: a route added to it later may be missed."""
        self.routes = routes
        self.services = services
        self.limits = limits
        self.limiter = RateLimiter()
        self._routes_of = functools.lru_cache(maxsize=ROUTE_CACHE)(routes.match)

    def match(self, path: str) -> Match | None:
        match = self._routes_of(path)
        if match is None:
            return None
        # A match of its own: its parameters are the handler's to use as it likes.
        return Match(match.pattern, dict(match.params), match.endpoints)

    def body_type(self, method: str, path: str) -> type[Any] | None:
        """The Struct type the route of `method` `path` takes its body as, if it has one."""
        match = self._routes_of(path)
        endpoint = match.endpoint(method) if match is not None else None
        return endpoint.body_type if endpoint is not None else None

    async def handle(self, request: ApiRequest, failure: DomainError | None = None) -> ApiResponse:
        """Answer one request; never raises.

        `failure` is an error the transport found before the API could see the request (an
        undecodable or oversized body...): it is answered like any other, rate limits included.
        """
        match = self.match(request.path)
        principal: Principal | None = None
        verdict: Verdict | None = None
        try:
            if request.credential:
                principal = await self.services.keys.principal(request.credential)
            verdict = self._count(request, principal, match)
            if not verdict.allowed:
                response = self._too_many(verdict, principal)
            elif failure is not None:
                response = error_response(failure)
            else:
                response = await self._dispatch(request, match, principal)
        except DomainError as exc:
            response = error_response(exc)
        except Exception:
            logger.exception("unhandled error on %s %s", request.method, request.path)
            response = internal_error()
        if verdict is None:
            # Authentication itself failed (keys service down): count the request by IP.
            verdict = self._count(request, None, None)
        if principal is not None and match is not None and self.services.request_log is not None:
            if match.pattern.startswith(DEVICE_PREFIX) and match.params.keys() & {
                "device",
                "serial",
            }:
                self.services.request_log.record(
                    principal.account_id,
                    match.params,
                    response.status,
                    request.method,
                    request.path,
                )
        if verdict.limit:
            response.headers.update(verdict.headers())
        return response

    # rate limits
    def _count(
        self, request: ApiRequest, principal: Principal | None, match: Match | None
    ) -> Verdict:
        if principal is None:
            return self._hit("ip:" + request.client, self.limits.per_ip)
        verdict = self._hit("key:" + principal.key, self.limits.per_key)
        if not self.limits.per_device_writes:
            return verdict
        target = _device_write_target(request, match)
        if target is None:
            return verdict
        device = self.limiter.hit(target, self.limits.per_device_writes)
        # The device rule is the one reported; a request over the key's limit still fails.
        allowed = verdict.allowed and device.allowed
        return Verdict(allowed, device.limit, device.remaining if allowed else 0, device.reset)

    def _hit(self, bucket: str, limit: int) -> Verdict:
        return self.limiter.hit(bucket, limit) if limit else UNLIMITED

    def _too_many(self, verdict: Verdict, principal: Principal | None) -> ApiResponse:
        scope = "IP address" if principal is None else "API key"
        if principal is not None and verdict.limit == self.limits.per_device_writes:
            scope = "API key or device (writes)"
        response = error_response(RateLimited(
            f"Rate limit exceeded: at most {verdict.limit} requests per second per {scope}."
        ))  # fmt: skip
        response.headers["Retry-After"] = str(max(1, math.ceil(verdict.reset - time.time())))
        return response

    # routing and authorization
    async def _dispatch(
        self, request: ApiRequest, match: Match | None, principal: Principal | None
    ) -> ApiResponse:
        if match is None:
            raise NotFound("")
        if request.method == "OPTIONS":
            return self._options(request, match, principal)
        endpoint = match.endpoint(request.method)
        if endpoint is None:
            raise MethodNotAllowed(
                f"{request.method} is not allowed on {request.path}.", _allow(match.endpoints)
            )
        anonymous_read = endpoint.access is Access.DEVICE_READ and not request.credential
        if endpoint.access is not Access.PUBLIC and not anonymous_read:
            if principal is None:
                raise Unauthenticated("no valid API key")
            self.authorize(request, endpoint, match.params, principal)
        call = Call(request, match.params, principal, self.services)
        try:
            return await endpoint.handler(call)
        except NotFound as exc:
            if anonymous_read and exc.resource == "Device":
                # Without a key only public devices are visible; a key might reach this one.
                raise Unauthenticated("no valid API key") from None
            raise

    def authorize(
        self, request: ApiRequest, endpoint: Endpoint, params: dict[str, str], principal: Principal
    ) -> None:
        """Raise PermissionDenied unless `principal` may call `endpoint` (spec §1.2-§1.4)."""
        if not principal.account_active:
            raise PermissionDenied("ACCOUNT_NOT_ACTIVE")
        if principal.expired():
            raise PermissionDenied("KEY_EXPIRED")
        if not principal.origin_allowed(request.client):
            raise PermissionDenied("ORIGIN_NOT_ALLOWED")
        if endpoint.method not in principal.permissions:
            raise PermissionDenied("METHOD_NOT_PERMITTED")
        if endpoint.access is Access.MASTER and not principal.is_master:
            raise PermissionDenied("MASTER_KEY_REQUIRED")
        device_route = endpoint.access in (Access.DEVICE, Access.DEVICE_READ)
        if device_route and not _reaches(principal, params, endpoint.pattern):
            raise PermissionDenied("OUT_OF_SCOPE")

    def _options(
        self, request: ApiRequest, match: Match, principal: Principal | None
    ) -> ApiResponse:
        usable = []
        for method, endpoint in match.endpoints.items():
            if endpoint.access is Access.PUBLIC or (
                endpoint.access is Access.DEVICE_READ and principal is None
            ):
                usable.append(method)
            elif principal is not None:
                try:
                    self.authorize(request, endpoint, match.params, principal)
                    usable.append(method)
                except PermissionDenied:
                    pass
        return ApiResponse(200, None, headers={"Allow": ", ".join(_allow_list(usable))})


def _names_streams(pattern: str) -> bool:
    """Device routes whose streams come in the body or are filtered by storage per stream."""
    rest = pattern.split("}", 1)[1] if pattern.startswith(DEVICE_PREFIX) else ""
    return rest.startswith(("/streams", "/update", "/values"))


def _reaches(principal: Principal, params: dict[str, str], pattern: str) -> bool:
    """Whether a key reaches the device (and stream) named in the path."""
    if principal.stream:
        if "stream" in params:
            if params["stream"] != principal.stream:
                return False
        elif not _names_streams(pattern):
            return False  # a stream-restricted key reaches nothing but its stream
    if principal.is_master or "device" not in params:
        # The storage service scopes devices to the key's account, resolves serials and
        # knows collection and distribution membership: it makes the final decision.
        return True
    return principal.kind != "device" or params["device"] == principal.device_id


def _device_write_target(request: ApiRequest, match: Match | None) -> str | None:
    """The per-device write bucket of a POST/PUT/DELETE under /v2/devices/{id}, if any."""
    if (
        match is None
        or request.method not in WRITE_METHODS
        or match.endpoint(request.method) is None
    ):
        return None
    if not match.pattern.startswith(DEVICE_PREFIX):
        return None
    if "serial" in match.params and match.pattern.startswith(DEVICE_PREFIX + "serial/"):
        return "serial:" + match.params["serial"]
    if "device" in match.params:
        return "device:" + match.params["device"]
    return None


def _allow_list(methods: list[str]) -> list[str]:
    methods = sorted(set(methods))
    if "GET" in methods:
        methods.append("HEAD")
    return [*methods, "OPTIONS"]


def _allow(endpoints: dict[str, Endpoint]) -> list[str]:
    return _allow_list(list(endpoints))
