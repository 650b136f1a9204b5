"""BackendRecordSource against a stand-in backend that can misbehave on purpose.

The real backend is exercised in tests/test_profiles_e2e.py; here an aiohttp app plays the
backend so that the failures a healthy backend never produces (500s, garbage, hangs) are covered.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ensign.errors import InvalidRequest, ServiceUnavailable
from resolver.records import BackendRecordSource, InMemoryRecordSource, NameRecords

ALICE = {
    "name": "alice.user.ensign.eth",
    "address": "0x71C7656EC7ab88b098defB751B7401B5f6d8976F",
    "texts": {"network.dm3.profile": "data:application/json,{}"},
    "contenthash": "0xe301",
}
seen_key = web.AppKey("seen_key", list[str])


async def start_backend(routes: dict[str, Any]) -> TestServer:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.raw_path)
        behaviour = routes.get(request.match_info["name"])
        if behaviour is None:
            return web.json_response({"error": "not_found", "message": "no such name"}, status=404)
        return await behaviour(request)

    app = web.Application()
    app.router.add_get("/records/{name}", handler)
    app[seen_key] = seen
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_found_name_is_parsed_into_records() -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response(ALICE)

    server = await start_backend({"alice.user.ensign.eth": ok})
    source = BackendRecordSource(str(server.make_url("/")))
    try:
        records = await source.records("alice.user.ensign.eth")
    finally:
        await source.close()
        await server.close()
    assert records == NameRecords(
        name="alice.user.ensign.eth",
        address="0x71C7656EC7ab88b098defB751B7401B5f6d8976F",
        texts={"network.dm3.profile": "data:application/json,{}"},
        contenthash=bytes.fromhex("e301"),
    )


async def test_unknown_name_is_none_and_the_name_is_percent_encoded() -> None:
    server = await start_backend({})
    source = BackendRecordSource(str(server.make_url("/")))
    try:
        assert await source.records("ünï.user.ensign.eth") is None
        assert await source.records("a?b#c.eth") is None
    finally:
        await source.close()
        await server.close()
    assert server.app[seen_key] == ["/records/%C3%BCn%C3%AF.user.ensign.eth", "/records/a%3Fb%23c.eth"]


@pytest.mark.parametrize("name", ["", "alice..eth", ".eth", "eth."])
async def test_malformed_names_are_refused_before_any_request(name: str) -> None:
    source = BackendRecordSource("http://127.0.0.1:9")
    with pytest.raises(InvalidRequest):
        await source.records(name)
    await source.close()


async def _status_500(_: web.Request) -> web.Response:
    return web.json_response({"error": "internal", "message": "internal server error"}, status=500)


async def _garbage(_: web.Request) -> web.Response:
    return web.Response(text="<html>oops</html>")


async def _wrong_types(_: web.Request) -> web.Response:
    return web.json_response({**ALICE, "address": "alice"})


async def _huge(_: web.Request) -> web.Response:
    return web.json_response({**ALICE, "texts": {"k": "x" * 300_000}})


async def _hang(_: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response(ALICE)


@pytest.mark.parametrize("behaviour", [_status_500, _garbage, _wrong_types, _huge, _hang])
async def test_a_misbehaving_backend_is_service_unavailable(behaviour: Any) -> None:
    server = await start_backend({"alice.eth": behaviour})
    source = BackendRecordSource(str(server.make_url("/")), timeout=0.5)
    try:
        with pytest.raises(ServiceUnavailable) as info:
            await source.records("alice.eth")
    finally:
        await source.close()
        await server.close()
    # Nothing of the backend's body leaks into the message.
    assert "oops" not in info.value.message and "xxxx" not in info.value.message


async def test_a_backend_that_is_down_is_service_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = BackendRecordSource(f"http://127.0.0.1:{port}")
    with pytest.raises(ServiceUnavailable, match="cannot be reached"):
        await source.records("alice.eth")
    await source.close()


async def test_backend_url_with_a_path_prefix() -> None:
    source = BackendRecordSource("http://backend.internal/api/")
    assert str(source.url_for("bob.eth")) == "http://backend.internal/api/records/bob.eth"
    await source.close()


async def test_in_memory_source_set_and_remove() -> None:
    source = InMemoryRecordSource([NameRecords(name="a.eth", texts={"k": "v"})])
    assert (await source.records("a.eth")).texts["k"] == "v"  # type: ignore[union-attr]
    source.set(NameRecords(name="b.eth"))
    source.remove("a.eth")
    assert await source.records("a.eth") is None
    assert await source.records("b.eth") == NameRecords(name="b.eth")
