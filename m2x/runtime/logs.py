"""JSON logs, one object per line on stderr, carrying the trace id and request id."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import sys
import time
import traceback

import orjson
from opentelemetry import trace

# The request id of the request being served, set by the adapters and the gRPC interceptors.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("m2x_request_id", default="")
# Fresh ids: 32 hex digits, a random half per process and a counter, so a request costs no
# call for random bytes (a getrandom system call each, ~1% of the HTTP adapter's CPU).
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count()


def new_request_id() -> str:
    """An id for a request that came without one (a random prefix per process: distinct
    across processes and restarts but for a 1 in 2**64 chance)."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "component": self.component,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = f"{context.trace_id:032x}"
            entry["span_id"] = f"{context.span_id:016x}"
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def setup_logging(component: str, level: str = "INFO") -> None:
    """Route every logger to one JSON handler on stderr (stdout is kept for the ready line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs per request would dominate at thousands of requests per second.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
