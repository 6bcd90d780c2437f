"""The MQTT API's envelopes (spec §21): a request in, `{id, status, body}` out.

A request is `{"id", "method", "resource", "body"}` published on `m2x/<key>/requests`; the key
is the topic's, never the payload's. `resource` is a path with `/v2` and maybe a query string;
on GET the body's fields are query parameters too (the Python client sends them there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from adapters.api.errors import BadRequest, PayloadTooLarge
from adapters.api.messages import ApiRequest, ApiResponse
from m2x.runtime.errors import DomainError

RequestId = str | int | float

TOO_LARGE = ApiResponse(500, {
    "message": "Internal Server Error",
    "description": "The response is too large for MQTT; make this request over HTTP.",
})  # fmt: skip


class Unanswerable(Exception):
    """A payload without an id to answer to: it is logged and dropped."""


@dataclass(slots=True)
class Envelope:
    id: RequestId
    request: ApiRequest
    failure: DomainError | None = None  # answered instead of the request (rate limits apply)


def key_of(topic: str) -> str | None:
    """The API key of a request topic `m2x/<key>/requests`."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "m2x" and parts[2] == "requests" and parts[1]:
        return parts[1]
    return None


def _readable_id(value: Any) -> TypeGuard[RequestId]:
    return isinstance(value, str) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _param(value: Any) -> str | None:
    """A body field as the query parameter a URL would carry."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ",".join(str(v) for v in value)
    return orjson.dumps(value).decode()


def parse_request(payload: bytes, key: str, base_url: str, max_bytes: int) -> Envelope:
    """The envelope of a request payload; Unanswerable when no id can be read from it."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise Unanswerable("payload is not JSON") from None
    if not isinstance(document, dict):
        raise Unanswerable("payload is not a JSON object")
    request_id = document.get("id")
    if not _readable_id(request_id):
        raise Unanswerable("payload has no id (a string or a number)")
    request = ApiRequest(
        method="", path="", credential=key, client=f"mqtt:{key}", base_url=base_url
    )
    envelope = Envelope(request_id, request)
    method, resource = document.get("method"), document.get("resource")
    if not isinstance(method, str) or not method or not isinstance(resource, str) or not resource:
        envelope.failure = BadRequest(
            'A request needs "method" (GET, POST, PUT, DELETE) and "resource" '
            "(a path such as /v2/devices), both strings."
        )
        return envelope
    parts = urlsplit(resource)
    request.method = method.upper()
    request.path = "/" + unquote(parts.path).lstrip("/")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    body = document.get("body")
    if request.method in ("GET", "HEAD") and isinstance(body, Mapping):
        for name, value in body.items():
            text = _param(value)
            if text is not None:
                query[str(name)] = text
    request.query = query
    request.body = body
    if len(payload) > max_bytes:
        envelope.failure = PayloadTooLarge(f"The request is larger than {max_bytes} bytes.")
    return envelope


def _json_body(response: ApiResponse) -> Any:
    if response.status == 204:
        return None
    body = response.body
    if isinstance(body, bytes):  # text answers (CSV, plain text) travel as JSON strings
        return body.decode("utf-8", "replace")
    return body


def response_payload(request_id: RequestId, response: ApiResponse, max_bytes: int) -> bytes:
    """`{"id", "status", "body"}` (body null when there is none, as on 204)."""
    payload = orjson.dumps({"id": request_id, "status": response.status,
                            "body": _json_body(response)})  # fmt: skip
    if len(payload) > max_bytes:
        payload = orjson.dumps({"id": request_id, "status": TOO_LARGE.status,
                                "body": TOO_LARGE.body})  # fmt: skip
    return payload
