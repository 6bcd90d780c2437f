"""HTTP bodies in and out: JSON or MessagePack by Content-Type/Accept, JSON-P, pretty, UTF-8."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import msgpack
import msgspec
import orjson

from adapters.api.errors import BadRequest, UnsupportedMediaType
from adapters.api.messages import ApiResponse

JSON = "application/json"
MSGPACK = "application/x-msgpack"
_MSGPACK_TYPES = frozenset({MSGPACK, "application/msgpack", "application/vnd.msgpack"})
_JSON_TYPES = frozenset({JSON, "text/json", "application/*", "*/*", ""})
_TEXT_TYPES = frozenset(
    {"text/plain", "text/csv", "text/*", "text/javascript", "application/javascript"}
)
_FORM = "application/x-www-form-urlencoded"
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")


@functools.cache
def _typed_decoder(body_type: type[Any]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type)


def decode_body(
    raw: bytes, content_type: str, charset: str | None, body_type: type[Any] | None = None
) -> Any:
    """The request body as Python values (or as `body_type`, a msgspec Struct, when it is JSON
    that fits it); None when empty."""
    if not raw.strip():
        return None
    if charset and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("Only UTF-8 encoded request bodies are accepted.")
    kind = content_type.lower()
    if kind in _MSGPACK_TYPES:
        try:
            return msgpack.unpackb(raw, raw=False, strict_map_key=False, timestamp=0)
        except (ValueError, msgpack.UnpackException, TypeError) as exc:
            raise BadRequest(f"The request body is not valid MessagePack ({exc}).") from None
    if kind in _JSON_TYPES or kind.endswith("+json") or kind == "application/octet-stream":
        if body_type is not None:
            try:
                return _typed_decoder(body_type).decode(raw)
            except msgspec.MsgspecError:
                pass  # as plain values, for the route to say what is wrong with them
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The request body is not valid UTF-8 JSON ({exc}).") from None
    if kind == _FORM:
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise BadRequest("The request body is not valid UTF-8.") from None
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported; send {JSON} or {MSGPACK}."
    )


def response_format(accept: str) -> str:
    """JSON or MessagePack, from the Accept header; 415 when neither is acceptable."""
    if not accept:
        return JSON
    wanted = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    for kind in wanted:
        if kind in _MSGPACK_TYPES:
            return MSGPACK
        if kind in _JSON_TYPES or kind in _TEXT_TYPES:
            # Text and CSV routes answer in their own type; everything else in JSON.
            return JSON
    raise UnsupportedMediaType(f"Cannot answer in {accept!r}; accept {JSON} or {MSGPACK}.")


def is_pretty(query: Mapping[str, str]) -> bool:
    """`?pretty` and `?pretty=true` (any value but false) ask for indented JSON."""
    return "pretty" in query and query["pretty"].lower() != "false"


def encode(
    response: ApiResponse, fmt: str, query: Mapping[str, str], method: str
) -> tuple[bytes, str]:
    """The response body bytes and their Content-Type."""
    if response.content_type is not None:
        text = response.body if isinstance(response.body, bytes) else str(response.body).encode()
        return text, f"{response.content_type}; charset=utf-8"
    if response.body is None:
        return b"", ""
    if response.format is not None:
        fmt = MSGPACK if response.format == "msgpack" else JSON
    if fmt == MSGPACK:
        return msgpack.packb(response.body, use_bin_type=True), MSGPACK
    option = orjson.OPT_INDENT_2 if is_pretty(query) else 0
    body = orjson.dumps(response.body, option=option)
    callback = query.get("callback")
    if callback and method in ("GET", "HEAD"):
        if not _CALLBACK.match(callback) or len(callback) > 128:
            raise BadRequest("The callback parameter must be a JavaScript identifier.")
        return f"{callback}(".encode() + body + b");", "application/javascript; charset=utf-8"
    return body, f"{JSON}; charset=utf-8"
