"""ensign.web: JSON errors, JSON bodies and CORS, through a real aiohttp app."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis.exceptions
from aiohttp import web

from ensign.errors import Conflict, InvalidRequest, SignatureError
from ensign.web import cors_middleware, deadline_middleware, error_middleware, read_json


def make_app(*, origins: Any = "*") -> web.Application:
    routes = web.RouteTableDef()

    @routes.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"got": await read_json(request)})

    @routes.post("/echo-list")
    async def echo_list(request: web.Request) -> web.Response:
        return web.json_response({"got": await read_json(request, list)})

    @routes.get("/conflict")
    async def conflict(request: web.Request) -> web.Response:
        raise Conflict("already there", code="alias_taken", details={"name": "x"})

    @routes.get("/bad-signature")
    async def bad_signature(request: web.Request) -> web.Response:
        raise SignatureError("profile not signed by 0xabc")

    @routes.get("/boom")
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret-key=deadbeef")

    @routes.get("/redis-down")
    async def redis_down(request: web.Request) -> web.Response:
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1")

    @routes.get("/cluster-down")
    async def cluster_down(request: web.Request) -> web.Response:
        # What a Redis Cluster answers once a primary without a replica has failed.
        raise redis.exceptions.ClusterDownError("The cluster is down")

    @routes.get("/demoted")
    async def demoted(request: web.Request) -> web.Response:
        # What a primary demoted by a failover answers a write.
        raise redis.exceptions.ReadOnlyError("You can't write against a read only replica.")

    app = web.Application(middlewares=[cors_middleware(origins), error_middleware], client_max_size=1024)
    app.add_routes(routes)
    return app


async def test_ensign_error_becomes_json_with_status_code_and_details(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.get("/conflict")
    assert response.status == 409
    assert await response.json() == {"error": "alias_taken", "message": "already there", "details": {"name": "x"}}


async def test_protocol_error_is_400_with_its_code(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.get("/bad-signature")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_signature"


async def test_unknown_exception_is_generic_500_and_logged_with_traceback(aiohttp_client, caplog):
    client = await aiohttp_client(make_app())
    with caplog.at_level(logging.ERROR, logger="ensign.web"):
        response = await client.get("/boom")
    assert response.status == 500
    body = await response.json()
    assert body == {"error": "internal", "message": "internal server error"}
    assert "deadbeef" not in await response.text()
    assert any(record.exc_info and "deadbeef" in str(record.exc_info[1]) for record in caplog.records)


async def test_redis_connection_error_is_503(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.get("/redis-down")
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "unavailable"
    assert "127.0.0.1" not in body["message"]


async def test_write_to_a_demoted_primary_is_503_not_500(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.get("/demoted")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"


async def test_redis_cluster_down_is_503(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.get("/cluster-down")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"] == "unavailable"


async def test_unknown_route_and_wrong_method_are_json(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.get("/nowhere")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"
    response = await client.get("/echo")
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


async def test_body_over_limit_is_413_json(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.post("/echo", data=b'{"a": "' + b"x" * 2000 + b'"}')
    assert response.status == 413
    assert (await response.json())["error"] == "payload_too_large"


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"not json", b"{", b'{"a": NaN}', b"\xff\xfe", b"[1, 2]", b'"text"', b"3", b"null", b"true"],
)
async def test_read_json_refuses_non_objects_with_400(aiohttp_client, raw):
    client = await aiohttp_client(make_app())
    response = await client.post("/echo", data=raw)
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_json"
    assert body["message"]


async def test_read_json_returns_the_value_of_the_expected_type(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.post("/echo", data=b'{"a": [1, "\\u00e9"]}')
    assert response.status == 200
    assert await response.json() == {"got": {"a": [1, "é"]}}
    response = await client.post("/echo-list", data=b"[1]")
    assert await response.json() == {"got": [1]}
    response = await client.post("/echo-list", data=b"{}")
    assert response.status == 400


async def test_cors_preflight_is_answered_before_routing(aiohttp_client):
    client = await aiohttp_client(make_app())
    response = await client.options(
        "/echo", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


async def test_cors_headers_on_success_and_error_responses(aiohttp_client):
    client = await aiohttp_client(make_app())
    ok = await client.post("/echo", data=b"{}", headers={"Origin": "https://app.example"})
    error = await client.get("/conflict", headers={"Origin": "https://app.example"})
    missing = await client.get("/nowhere", headers={"Origin": "https://app.example"})
    for response in (ok, error, missing):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    no_origin = await client.post("/echo", data=b"{}")
    assert "Access-Control-Allow-Origin" not in no_origin.headers


async def test_cors_with_an_origin_list_allows_only_those(aiohttp_client):
    client = await aiohttp_client(make_app(origins=["https://good.example"]))
    good = await client.post("/echo", data=b"{}", headers={"Origin": "https://good.example"})
    bad = await client.post("/echo", data=b"{}", headers={"Origin": "https://evil.example"})
    assert good.headers["Access-Control-Allow-Origin"] == "https://good.example"
    assert "Origin" in good.headers.getall("Vary")
    assert "Access-Control-Allow-Origin" not in bad.headers
    preflight = await client.options(
        "/echo", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_invalid_request_is_not_logged_as_an_error(aiohttp_client, caplog):
    routes = web.RouteTableDef()

    @routes.get("/bad")
    async def bad(request: web.Request) -> web.Response:
        raise InvalidRequest("field x is missing")

    app = web.Application(middlewares=[error_middleware])
    app.add_routes(routes)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.WARNING, logger="ensign.web"):
        response = await client.get("/bad")
    assert response.status == 400
    assert await response.json() == {"error": "invalid_request", "message": "field x is missing"}
    assert not caplog.records


def deadline_app(seconds: float) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="never")

    @routes.get("/fast")
    async def fast(request: web.Request) -> web.Response:
        await asyncio.sleep(0)
        return web.Response(text="fast")

    @routes.get("/swallows")
    async def swallows(request: web.Request) -> web.Response:
        # A handler that catches the deadline's cancellation and goes on answering: its task must
        # not be left marked as cancelled (later awaits would misread it).
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0.01)
        return web.Response(text="answered")

    @routes.get("/cancelled-elsewhere")
    async def cancelled_elsewhere(request: web.Request) -> web.Response:
        # Cancelled by someone else before the deadline: that cancellation is not a timeout.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_later(0.05, task.cancel)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return web.Response(text="cancelled, not timed out")
        return web.Response(text="never")

    @web.middleware
    async def cancelling(request: web.Request, handler: Any) -> web.StreamResponse:
        # What the task looks like once the deadline middleware is done with the request.
        response = await handler(request)
        task = asyncio.current_task()
        assert task is not None
        response.headers["X-Cancelling"] = str(task.cancelling())
        return response

    app = web.Application(middlewares=[cancelling, error_middleware, deadline_middleware(seconds)])
    app.add_routes(routes)
    return app


async def test_a_request_past_its_deadline_gets_503_and_the_next_ones_are_served(aiohttp_client):
    client = await aiohttp_client(deadline_app(0.3))
    started = time.monotonic()
    resp = await client.get("/slow")
    assert resp.status == 503 and (await resp.json())["error"] == "unavailable"
    assert 0.3 <= time.monotonic() - started < 2.0  # the deadline, kept within a tenth of it late
    answers = await asyncio.gather(*(client.get("/fast") for _ in range(20)))
    assert [r.status for r in answers] == [200] * 20
    slow_ones = await asyncio.gather(*(client.get("/slow") for _ in range(5)))
    assert [r.status for r in slow_ones] == [503] * 5


async def test_a_swallowed_deadline_leaves_the_task_uncancelled(aiohttp_client):
    client = await aiohttp_client(deadline_app(0.2))
    resp = await client.get("/swallows")
    assert resp.status == 200 and await resp.text() == "answered"
    assert resp.headers["X-Cancelling"] == "0"


async def test_a_cancellation_from_elsewhere_is_not_taken_for_the_deadline(aiohttp_client):
    client = await aiohttp_client(deadline_app(5))
    resp = await client.get("/cancelled-elsewhere")
    assert resp.status == 200 and await resp.text() == "cancelled, not timed out"
