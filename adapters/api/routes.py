"""The route table: method + path pattern -> endpoint, shared by every transport."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from adapters.api.messages import ApiResponse

if TYPE_CHECKING:
    from adapters.api.context import Call

Handler = Callable[["Call"], Awaitable[ApiResponse]]
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})


class Access(Enum):
    PUBLIC = "public"  # no key needed
    MASTER = "master"  # a master key of the account
    DEVICE = "device"  # a key that reaches the {device} (and {stream}) of the path
    # As DEVICE, and also anyone without a key when the device is public (storage decides).
    DEVICE_READ = "device_read"


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    pattern: str
    handler: Handler
    access: Access
    # A msgspec Struct type the transport may decode the body into instead of plain values
    # (much less CPU for large bodies); the handler then gets either, and must take both.
    body_type: type[Any] | None = None


@dataclass(frozen=True, slots=True)
class Match:
    pattern: str
    params: dict[str, str]
    endpoints: dict[str, Endpoint]  # by method, for this path

    def endpoint(self, method: str) -> Endpoint | None:
        return self.endpoints.get("GET" if method == "HEAD" else method)


class RouteTable:
    """Patterns are `/v2/keys/{key}`-style; a `{name}` segment matches one path segment."""

    def __init__(self) -> None:
        # segment count -> [(segments of the pattern, pattern, endpoints by method)]
        self._routes: dict[int, list[tuple[tuple[str, ...], str, dict[str, Endpoint]]]] = {}

    def add(self, method: str, pattern: str, handler: Handler, access: Access,
            body_type: type[Any] | None = None) -> None:  # fmt: skip
        segments = tuple(pattern.strip("/").split("/"))
        bucket = self._routes.setdefault(len(segments), [])
        endpoint = Endpoint(method, pattern, handler, access, body_type)
        for existing, _, endpoints in bucket:
            if existing == segments:
                endpoints[method] = endpoint
                return
        bucket.append((segments, pattern, {method: endpoint}))
        # Literal segments win over parameters (`/keys/search` before `/keys/{key}`).
        bucket.sort(key=lambda route: [s.startswith("{") for s in route[0]])

    def match(self, path: str) -> Match | None:
        parts = path.strip("/").split("/")
        for segments, pattern, endpoints in self._routes.get(len(parts), ()):
            params: dict[str, str] = {}
            for want, got in zip(segments, parts, strict=True):
                if want.startswith("{"):
                    if not got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return Match(pattern, params, endpoints)
        return None

    def add_device(self, method: str, suffix: str, handler: Handler, access: Access,
                   body_type: type[Any] | None = None) -> None:  # fmt: skip
        """A route under /v2/devices/{device}, also reachable as /v2/devices/serial/{serial}."""
        self.add(method, "/v2/devices/{device}" + suffix, handler, access, body_type)
        self.add(method, "/v2/devices/serial/{serial}" + suffix, handler, access, body_type)

    def include(self, other: RouteTable) -> None:
        for bucket in other._routes.values():
            for _, _, endpoints in bucket:
                for endpoint in endpoints.values():
                    self.add(endpoint.method, endpoint.pattern, endpoint.handler, endpoint.access,
                             endpoint.body_type)  # fmt: skip
