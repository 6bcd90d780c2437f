"""OpenTelemetry: one trace from the HTTP request through gRPC into the keys service."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.stack import NO_LIMITS, start_stack

TRACING = {
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_BSP_SCHEDULE_DELAY": "50",
}


def spans(lines: list[str]) -> dict[str, str]:
    """Span name -> trace id, from the console exporter's JSON output."""
    text = "".join(lines)
    found = {}
    for block in re.findall(r"\{\s*\"name\".*?\n\}", text, flags=re.DOTALL):
        name = re.search(r'"name": "([^"]+)"', block)
        trace_id = re.search(r'"trace_id": "(0x[0-9a-f]+)"', block)
        if name and trace_id:
            found[name.group(1)] = trace_id.group(1)
    return found


async def test_trace_spans_http_and_keys_service(tmp_path: Path) -> None:
    async with start_stack(tmp_path, *NO_LIMITS, env=TRACING) as stack:
        _, master = await stack.new_account()
        # An unknown key is never cached, so the adapter has to ask the keys service.
        status, _, _ = await stack.request("GET", "/v2/keys/" + "0" * 32, key=master)
        assert status == 404
        http_lines, keys_lines = stack.http.stdout_lines, stack.keys.stdout_lines
    # Stopping the processes flushed their span batches.
    http_spans, keys_spans = spans(http_lines), spans(keys_lines)
    assert "HTTP GET" in http_spans, http_lines[-20:]
    assert "/m2x.keys.v1.KeysService/GetKey" in keys_spans, keys_lines[-20:]
    assert keys_spans["/m2x.keys.v1.KeysService/GetKey"] == http_spans["HTTP GET"]


METRICS = {"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "200"}


async def test_metrics_export_request_and_rpc_latency(tmp_path: Path) -> None:
    async with start_stack(tmp_path, *NO_LIMITS, env=METRICS) as stack:
        _, master = await stack.new_account()
        for _ in range(3):
            assert (await stack.request("GET", "/v2/keys/" + "0" * 32, key=master))[0] == 404
        http_lines, keys_lines = stack.http.stdout_lines, stack.keys.stdout_lines
    # Shutdown flushed the last readings.
    assert '"http.server.duration"' in "".join(http_lines), http_lines[-20:]
    keys_output = "".join(keys_lines)
    assert '"rpc.server.duration"' in keys_output and "GetKey" in keys_output
