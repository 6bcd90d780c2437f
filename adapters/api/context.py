"""What a route handler gets: the request, path parameters, principal and backend services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.api.errors import BadRequest
from adapters.api.messages import ApiRequest
from adapters.api.principals import KeysGateway, Principal
from m2x.storage.v1 import storage_pb2


@dataclass(slots=True)
class Services:
    """Clients of the backend services, opened once per adapter process."""

    keys: KeysGateway
    storage: Any = None  # m2x.storage.v1 StorageServiceStub
    triggers: Any = None  # m2x.triggers.v1 TriggersServiceStub
    request_log: Any = None  # adapters.api.request_log.RequestLogShipper
    values: Any = None  # adapters.api.value_writer.ValueWriter: every value write goes here
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

    def caller(self) -> storage_pb2.Caller:
        """Who is calling, for the storage service (which has the last word on devices)."""
        p = self.principal
        if p is None:
            return storage_pb2.Caller()
        record = p.record
        return storage_pb2.Caller(
            account_id=p.account_id, key_kind=p.kind, device_id=p.device_id, stream=p.stream,
            collection_id=record.collection_id, distribution_id=record.distribution_id,
        )  # fmt: skip

    def device_ref(self) -> storage_pb2.DeviceRef:
        if "serial" in self.params:
            return storage_pb2.DeviceRef(serial=self.params["serial"])
        return storage_pb2.DeviceRef(id=self.params["device"])

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
