"""The API remembers the route of a path; each request still gets parameters of its own."""

from __future__ import annotations

from adapters.api.api import Api, Limits
from adapters.api.context import Call, Services
from adapters.api.messages import ApiRequest, ApiResponse
from adapters.api.routes import Access, RouteTable


async def echo(c: Call) -> ApiResponse:
    params = dict(c.params)
    c.params["stream"] = "changed by the handler"
    return ApiResponse(200, params)


def make_api() -> Api:
    table = RouteTable()
    table.add("GET", "/v2/things/{thing}/streams/{stream}", echo, Access.PUBLIC)
    return Api(table, Services(keys=None), Limits(0, 0, 0))  # type: ignore[arg-type]


async def test_a_cached_route_gives_each_request_its_own_parameters() -> None:
    api = make_api()
    for _ in range(3):
        answer = await api.handle(ApiRequest("GET", "/v2/things/a/streams/t"))
        assert (answer.status, answer.body) == (200, {"thing": "a", "stream": "t"})
    answer = await api.handle(ApiRequest("GET", "/v2/things/b/streams/u"))
    assert answer.body == {"thing": "b", "stream": "u"}
    assert (await api.handle(ApiRequest("GET", "/v2/things/b"))).status == 404
    assert (await api.handle(ApiRequest("GET", "/v2/things/b"))).status == 404


async def test_unlimited_requests_carry_no_rate_limit_headers() -> None:
    answer = await make_api().handle(ApiRequest("GET", "/v2/things/a/streams/t"))
    assert not any(name.startswith("X-RateLimit") for name in answer.headers)
