"""Limits on what a client or a server we read from can hold: whole chunked answers up to their cap,
keep-alive and request deadlines, ``/metrics`` on an internal address."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from backend.app import create_app as create_backend
from ensign.config import BackendSettings, HttpSettings, RedisSettings
from ensign.ens.lookup import LinkPolicy, NameLookup
from ensign.errors import InvalidRequest
from ensign.protocol.profile import ProfileLink
from resolver.records import BackendRecordSource
from stack.serve import runner_options
from tests.delivery.ds_helpers import MemoryChain, MemoryDirectory, make_settings

RECORDS = {"name": "alice.user.ensign.eth", "address": "0x" + "ab" * 20, "texts": {"description": "x" * 3000}}


async def chunked_server(body: bytes, pieces: int = 6) -> TestServer:
    """A server answering ``body`` chunked, in ``pieces`` writes with a pause between them."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        step = max(1, len(body) // pieces)
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def records_server() -> AsyncIterator[TestServer]:
    server = await chunked_server(json.dumps(RECORDS).encode())
    yield server
    await server.close()


async def test_the_gateway_reads_a_chunked_backend_answer_whole(records_server: TestServer) -> None:
    source = BackendRecordSource(str(records_server.make_url("/")))
    try:
        records = await source.records("alice.user.ensign.eth")
    finally:
        await source.close()
    assert records is not None
    assert records.texts["description"] == RECORDS["texts"]["description"]  # type: ignore[index]


async def test_a_chunked_linked_profile_is_read_whole_and_its_cap_still_holds() -> None:
    profile = {"profile": {"padding": "y" * 5000}, "signature": "0x00"}
    body = json.dumps(profile).encode()
    server = await chunked_server(body)
    lookup = NameLookup(None, link_policy=LinkPolicy(allow_http=True, allow_private=True))
    small = NameLookup(None, link_policy=LinkPolicy(allow_http=True, allow_private=True, max_bytes=len(body) - 1))
    try:
        link = ProfileLink(url=str(server.make_url("/profile.json")), dm3_hash="0x00")
        assert await lookup._fetch_link("alice.eth", link) == profile
        with pytest.raises(InvalidRequest, match="larger than"):
            await small._fetch_link("alice.eth", link)
    finally:
        await lookup.close()
        await small.close()
        await server.close()


# -- keep-alive and deadlines ------------------------------------------------------------------------


@pytest.fixture
async def backend(redis: aioredis.Redis, redis_prefix: str) -> AsyncIterator[tuple[str, int]]:
    """The backend served as production serves it (stack.serve's runner options), with short timeouts."""
    http = HttpSettings(keepalive_timeout=1, request_timeout=1)
    settings = BackendSettings(redis=RedisSettings(prefix=redis_prefix), http=http)
    runner = web.AppRunner(create_backend(settings, redis=redis), access_log=None, **runner_options(http))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield str(host), int(port)
    await runner.cleanup()


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout=30)


async def test_an_idle_connection_and_one_that_never_finishes_its_headers_are_closed(backend: tuple[str, int]) -> None:
    host, port = backend
    # Idle: connect and send nothing. aiohttp's default would keep this for an hour.
    reader, writer = await asyncio.open_connection(host, port)
    assert await _read_until_closed(reader) == b""
    writer.close()
    # Slow headers: half a request line, then silence.
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    assert await _read_until_closed(reader) == b""
    writer.close()


async def test_a_body_that_does_not_arrive_within_the_deadline_gets_408(backend: tuple[str, int]) -> None:
    host, port = backend
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /profile/address HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{\"address\": "
    )
    await writer.drain()
    answer = await _read_until_closed(reader)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(body)["error"] == "request_timeout"


# -- /metrics on an internal address -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _statuses(redis: aioredis.Redis, settings: Any, urls: list[str]) -> list[int]:
    """Serve the delivery app with ``settings``; the status of each URL (``{public}`` is its port)."""
    from delivery.app import create_app

    app = create_app(settings, redis=redis, directory=MemoryDirectory(), chain=MemoryChain(), sweep_interval=None)
    return await _served_statuses(app, urls)


async def _served_statuses(app: web.Application, urls: list[str]) -> list[int]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    statuses = []
    try:
        async with aiohttp.ClientSession() as http:
            for url in urls:
                async with http.get(url.format(public=server.port)) as response:
                    await response.read()
                    statuses.append(response.status)
    finally:
        await server.close()
    return statuses


async def test_metrics_can_be_served_on_an_internal_address_only(redis: aioredis.Redis, redis_prefix: str) -> None:
    port = _free_port()
    internal = make_settings(redis_prefix, http=HttpSettings(metrics_port=port, metrics_host="127.0.0.1"))
    urls = ["http://127.0.0.1:{public}/metrics", f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{port}/health"]
    assert await _statuses(redis, internal, urls) == [404, 200, 404]
    # By default it stays on the public port, as before.
    default = make_settings(redis_prefix)
    assert default.http.metrics_port is None
    assert await _statuses(redis, default, ["http://127.0.0.1:{public}/metrics"]) == [200]


async def test_backend_and_gateway_metrics_can_be_served_on_an_internal_address_only(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    from backend.app import create_app as create_backend
    from ensign.config import BackendSettings, GatewaySettings, RedisSettings
    from resolver.gateway import create_app as create_gateway
    from resolver.records import InMemoryRecordSource

    urls = ["http://127.0.0.1:{public}/metrics", "http://127.0.0.1:%d/metrics"]
    backend_port, gateway_port = _free_port(), _free_port()
    backend = create_backend(
        BackendSettings(redis=RedisSettings(prefix=redis_prefix), http=HttpSettings(metrics_port=backend_port)),
        redis=redis,
    )
    assert await _served_statuses(backend, [urls[0], urls[1] % backend_port]) == [404, 200]
    gateway = create_gateway(
        GatewaySettings(signer_key="0x" + "11" * 32, http=HttpSettings(metrics_port=gateway_port)),
        records=InMemoryRecordSource(),
    )
    assert await _served_statuses(gateway, [urls[0], urls[1] % gateway_port]) == [404, 200]


def test_settings_read_the_limits_from_the_environment() -> None:
    from ensign.config import DeliverySettings

    env: dict[str, Any] = {
        "SIGNING_PUBLIC_KEY": "A" * 43 + "=",
        "SIGNING_PRIVATE_KEY": "A" * 86 + "==",
        "ENCRYPTION_PUBLIC_KEY": "A" * 43 + "=",
        "ENCRYPTION_PRIVATE_KEY": "A" * 43 + "=",
        "JWT_SECRET": "s" * 32,
        "HTTP_KEEPALIVE_TIMEOUT": "5",
        "HTTP_REQUEST_TIMEOUT": "7",
        "METRICS_PORT": "9100",
        "METRICS_HOST": "10.0.0.5",
        "ETH_RPC_TIMEOUT": "3",
    }
    settings = DeliverySettings.from_env(env)
    assert settings.http == HttpSettings(
        keepalive_timeout=5, request_timeout=7, metrics_port=9100, metrics_host="10.0.0.5"
    )
    assert settings.chain.rpc_timeout == 3
