"""Benchmark: CPU of the API layer alone for value writes, per value and per request.

No transport and no services: bodies are decoded as the HTTP adapter decodes them and answered
by the real route table and handlers through Api.handle, with a principal that is always
cached and a value writer that stores nothing. Measured in one run:

- /updates, 1,000 values a request (10 streams x 100, as bench.ingest sends them): the JSON
  decode alone (the floor), the entries converted one by one (`entries` and `Columns.add`, the
  per-value path every body took before bulk conversion, now kept for bodies with errors), the
  bulk conversion (`_streams`), and the whole pipeline (decode + Api.handle);
- PUT /streams/{name}/value, one value a request: the whole pipeline.

Each figure is the best of --repeats rounds of process CPU time (others' work on the machine
only ever adds to it); the ratio of the per-value path to the bulk one is what to compare.
Usage: python -m bench.api_cpu [--requests 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson

from adapters.api.api import Api, Limits
from adapters.api.app import all_routes
from adapters.api.fields import FieldReader
from adapters.api.messages import ApiRequest
from adapters.api.principals import Principal
from adapters.api.request_log import RequestLogShipper
from adapters.api.value_columns import Columns, entries
from adapters.api.values_routes import _streams
from bench.ingest import PER_STREAM, STREAMS, batches
from m2x.keys.v1 import keys_pb2
from m2x.storage.v1 import storage_pb2

VALUES = STREAMS * PER_STREAM
DEVICE = "d" * 32
KEY = "k" * 32


class Keys:
    def __init__(self) -> None:
        record = keys_pb2.ApiKey(
            key=KEY, account_id="a" * 32, kind=keys_pb2.KEY_KIND_MASTER, account_active=True,
            permissions=["GET", "POST", "PUT", "DELETE"],
        )  # fmt: skip
        self.master = Principal.from_pb(record)

    async def principal(self, credential: str) -> Principal | None:
        return self.master


class Writer:
    """Puts each write into a batch message, as ValueWriter does, and sends nothing."""

    async def write(self, *write: Any) -> int:
        caller, device, values, location = write
        batch = storage_pb2.WriteValuesBatchRequest()
        batch.writes.add(caller=caller, device=device, values=values, location=location)
        return 0


def make_api() -> tuple[Api, RequestLogShipper]:
    request_log = RequestLogShipper(storage=None)
    services = SimpleNamespace(
        keys=Keys(), storage=None, triggers=None, values=Writer(), request_log=request_log,
        health_checks={},
    )  # fmt: skip
    return Api(all_routes(), services, Limits(0, 0, 0)), request_log  # type: ignore[arg-type]


def per_value(body: dict[str, Any]) -> None:
    fields = FieldReader(body)
    columns = Columns()
    for name, raw in body["values"].items():
        columns.add(name, entries(fields, raw, name, None), fields, name)
    columns.message()


def bulk(body: dict[str, Any]) -> None:
    _streams(FieldReader(body), body["values"])


def best_cpu(rounds: int, work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bodies = [body for body, _ in batches(args.requests)]
    api, request_log = make_api()
    loop = asyncio.new_event_loop()

    def pipeline(method: str, path: str, raw: list[bytes]) -> None:
        async def run() -> None:
            for data in raw:
                request = ApiRequest(method, path, {}, orjson.loads(data), KEY, "127.0.0.1", "")
                answer = await api.handle(request)
                assert answer.status == 202, answer.body
            request_log._pending.clear()

        loop.run_until_complete(run())

    single = [
        orjson.dumps({"value": n + 0.5, "timestamp": f"2020-09-13T12:26:40.{n % 1000:03d}Z"})
        for n in range(args.requests * 20)
    ]

    def each(convert: Callable[[Any], object]) -> Callable[[], None]:
        def work() -> None:
            for data in bodies:
                convert(orjson.loads(data))

        return work

    figures: dict[str, Callable[[], None]] = {
        "decode only": each(lambda body: None),
        "decode + per-value path": each(per_value),
        "decode + bulk path": each(bulk),
        "decode + Api.handle": lambda: pipeline("POST", f"/v2/devices/{DEVICE}/updates", bodies),
    }
    print(f"API layer CPU, POST /updates: {args.requests} requests x {VALUES:,} values, best of "
          f"{args.repeats}")  # fmt: skip
    cost = {}
    for label, work in figures.items():
        cost[label] = best_cpu(args.repeats, work) / (args.requests * VALUES) * 1e6
        print(f"  {label:<26}: {cost[label]:6.3f} us/value")
    ratio = cost["decode + per-value path"] / cost["decode + bulk path"]
    print(f"  per-value path / bulk path: {ratio:.1f}x")
    seconds = best_cpu(
        args.repeats, lambda: pipeline("PUT", f"/v2/devices/{DEVICE}/streams/s0/value", single)
    )
    print(f"API layer CPU, PUT /streams/{{name}}/value: {seconds / len(single) * 1e6:.1f} us/request "
          "(decode + Api.handle)")  # fmt: skip
    loop.close()


if __name__ == "__main__":
    main()
