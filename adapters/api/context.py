"""What a route handler gets: the request, path parameters, principal and backend services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.api.errors import BadRequest
from adapters.api.messages import ApiRequest
from adapters.api.principals import KeysGateway, Principal


@dataclass(slots=True)
class Services:
    """Clients of the backend services, opened once per adapter process."""

    keys: KeysGateway
    # name -> async () -> bool, for /v2/status
    health_checks: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    request: ApiRequest
    params: dict[str, str]
    principal: Principal | None
    services: Services

    def url(self, path: str) -> str:
        """Absolute URL of an API path, e.g. url('/v2/keys/abc')."""
        return self.request.base_url.rstrip("/") + path

    @property
    def account_id(self) -> str:
        assert self.principal is not None, "route declared PUBLIC but needs an account"
        return self.principal.account_id

    def body_object(self) -> Mapping[str, Any]:
        """The request body, which must be a JSON object (an empty body counts as {})."""
        body = self.request.body
        if body is None:
            return {}
        if not isinstance(body, Mapping):
            raise BadRequest("The request body must be a JSON object.")
        return body
