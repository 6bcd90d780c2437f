"""OpenTelemetry set-up from the standard OTEL_* variables, cheap when off.

Tracing is on only when OTEL_TRACES_EXPORTER names an exporter (`otlp` or `console`); then
spans are sampled by OTEL_TRACES_SAMPLER (default: parent-based, 10% of new traces here) and
exported by a BatchSpanProcessor, never synchronously on the request path. Metrics are on when
OTEL_METRICS_EXPORTER names an exporter. With both off, the API's no-op providers stay in place,
so instrumented code pays one attribute check per request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry import metrics, trace

logger = logging.getLogger(__name__)

_DEFAULT_SAMPLER = "parentbased_traceidratio"
_DEFAULT_RATIO = "0.1"


@dataclass(slots=True)
class Telemetry:
    """What was switched on, and how to flush it at exit."""

    tracing: bool = False
    metrics: bool = False
    _shutdowns: list[Callable[[], object]] = field(default_factory=list)

    def shutdown(self) -> None:
        for stop in self._shutdowns:
            try:
                stop()
            except Exception:  # exporters must never break a clean exit
                logger.warning("telemetry shutdown failed", exc_info=True)


def _exporter_name(variable: str) -> str:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return "none"
    return os.environ.get(variable, "none").strip().lower() or "none"


def setup_telemetry(component: str) -> Telemetry:
    """Install tracer and meter providers for `component` as the environment asks."""
    state = Telemetry()
    traces_exporter = _exporter_name("OTEL_TRACES_EXPORTER")
    metrics_exporter = _exporter_name("OTEL_METRICS_EXPORTER")
    if traces_exporter == "none" and metrics_exporter == "none":
        return state

    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", f"m2x-{component}")}
    )
    resource = resource.merge(OTELResourceDetector().detect())

    if traces_exporter != "none":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

        os.environ.setdefault("OTEL_TRACES_SAMPLER", _DEFAULT_SAMPLER)
        os.environ.setdefault("OTEL_TRACES_SAMPLER_ARG", _DEFAULT_RATIO)
        provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
        span_exporter: SpanExporter
        if traces_exporter == "console":
            span_exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
        trace.set_tracer_provider(provider)
        global _tracing
        _tracing = state.tracing = True
        state._shutdowns.append(provider.shutdown)

    if metrics_exporter != "none":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            MetricExporter,
            PeriodicExportingMetricReader,
        )

        metric_exporter: MetricExporter
        if metrics_exporter == "console":
            metric_exporter = ConsoleMetricExporter()
        else:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            metric_exporter = OTLPMetricExporter()
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)]
        )
        metrics.set_meter_provider(meter_provider)
        state.metrics = True
        state._shutdowns.append(meter_provider.shutdown)
    return state


_tracing = False  # set once setup_telemetry installed a tracer provider


def tracing_enabled() -> bool:
    """True once setup_telemetry installed a tracer provider (lets hot paths skip span work).

    A flag, not a look at trace.get_tracer_provider(): that reads os.environ on every call,
    and gRPC interceptors ask on every call."""
    return _tracing
