"""What a transport hands the API layer and gets back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ApiRequest:
    method: str  # upper case: GET, POST, PUT, DELETE, HEAD, OPTIONS, ...
    path: str  # without the query string, e.g. /v2/keys/abc
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # decoded JSON / MessagePack / form body, None when empty
    credential: str | None = None  # the API key as sent, if any
    client: str = ""  # the client's IP address
    base_url: str = ""  # public base URL for absolute links, e.g. https://m2x.example.com


@dataclass(slots=True)
class ApiResponse:
    status: int
    body: Any = None  # a JSON-able value, or text when content_type is set
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None  # set for non-JSON bodies (text/plain, text/csv)
    format: str | None = None  # "msgpack" or "json" when the path chose it (values.msgpack)
