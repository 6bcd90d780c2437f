"""Answering requests: each message becomes an API call whose answer goes to the key's topic.

At most `concurrency` requests are handled at once. Beyond that, messages wait in the MQTT
client's queue (bounded by `queue_limit`, past which the client drops new ones with a warning):
MQTT at QoS 0 has no flow control, so a bounded wait and then shedding is the back-pressure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from opentelemetry import metrics, trace

from adapters.api.api import Api
from adapters.mqtt.envelope import Unanswerable, key_of, parse_request, response_payload
from m2x.runtime.logs import new_request_id, request_id
from m2x.runtime.telemetry import tracing_enabled

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]

_tracer = trace.get_tracer("m2x.mqtt")
_latency = metrics.get_meter("m2x.mqtt").create_histogram(
    "mqtt.server.duration", unit="ms", description="MQTT request latency"
)


class Responder:
    """Turns request payloads into response payloads through the API layer."""

    def __init__(self, api: Api, base_url: str, max_body: int, max_response: int) -> None:
        self.api = api
        self.base_url = base_url.rstrip("/")
        self.max_body = max_body
        self.max_response = max_response

    async def answer(self, topic: str, payload: bytes) -> tuple[str, bytes] | None:
        """(response topic, payload), or None for a message that cannot be answered."""
        key = key_of(topic)
        if key is None:
            logger.warning("message on %s dropped: not a request topic", topic)
            return None
        try:
            envelope = parse_request(payload, key, self.base_url, self.max_body)
        except Unanswerable as exc:
            logger.info("request on %s dropped: %s", topic, exc)
            return None
        request_id.set(new_request_id())
        request = envelope.request
        if tracing_enabled():
            with _tracer.start_as_current_span(
                f"MQTT {request.method}", kind=trace.SpanKind.SERVER
            ):
                response = await self.api.handle(request, envelope.failure)
        else:
            response = await self.api.handle(request, envelope.failure)
        body = response_payload(envelope.id, response, self.max_response)
        return f"m2x/{key}/responses", body


class Workers:
    """Runs one task per request, at most `limit` at a time, and waits for them on shutdown."""

    def __init__(self, responder: Responder, limit: int) -> None:
        self.responder = responder
        self._slots = asyncio.Semaphore(limit)
        self._running: set[asyncio.Task[None]] = set()

    async def take(self, topic: str, payload: bytes, publish: Publish) -> None:
        """Start answering a message once a slot is free (the caller waits meanwhile)."""
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(topic, payload, publish))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _answer(self, topic: str, payload: bytes, publish: Publish) -> None:
        started = time.perf_counter()
        try:
            reply = await self.responder.answer(topic, payload)
            if reply is not None:
                await publish(*reply)
        except Exception as exc:
            # A lost broker connection fails the publish: the device gets no answer, as with
            # any lost packet at QoS 0. Nothing here may stop the adapter.
            logger.warning("request on %s not answered: %r", topic, exc)
        _latency.record((time.perf_counter() - started) * 1000)

    @property
    def busy(self) -> int:
        return len(self._running)

    async def drain(self, within: float) -> None:
        """Wait up to `within` seconds for the requests being answered."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=within)
