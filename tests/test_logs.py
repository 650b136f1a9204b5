"""Structured logs shared by the three services: JSON lines, request ids, secrets kept out."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest
from aiohttp import web

from ensign import logs
from ensign.logs import JsonFormatter, configure_logging, log_request_line, new_request_id, request_id_var
from ensign.web import request_log_middleware

SECRET_URL = "redis://:hunter2-password@redis.internal:6379/0"


def record(message: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": message, "args": args, **extra})
    if exc is not None:
        made.exc_info = (type(exc), exc, exc.__traceback__)
    return made


def test_a_secret_url_is_replaced_in_the_message_extras_and_traceback() -> None:
    formatter = JsonFormatter({"REDIS_URL": SECRET_URL, "ETH_RPC_URL": None})
    try:
        raise ConnectionError(f"cannot reach {SECRET_URL}")
    except ConnectionError as error:
        line = formatter.format(record("connecting to %s", SECRET_URL, exc=error, endpoint=SECRET_URL))
    assert "hunter2" not in line
    entry = json.loads(line)
    assert entry["msg"] == "connecting to <REDIS_URL>"
    assert entry["endpoint"] == "<REDIS_URL>"
    assert "cannot reach <REDIS_URL>" in entry["exc"]


def test_a_secret_that_json_escapes_is_still_replaced() -> None:
    quoted = 'https://node.example/key"with\\quote'
    line = JsonFormatter({"ETH_RPC_URL": quoted}).format(record("rpc %s", quoted))
    assert json.loads(line)["msg"] == "rpc <ETH_RPC_URL>"


def test_lines_without_secrets_are_unchanged_json() -> None:
    entry = json.loads(JsonFormatter().format(record("plain %d", 3, status=200)))
    assert entry["msg"] == "plain 3" and entry["status"] == 200 and entry["level"] == "INFO"


async def test_every_request_gets_an_id_echoed_and_stamped_on_its_log_lines(aiohttp_client, caplog) -> None:
    async def hello(request: web.Request) -> web.Response:
        logging.getLogger("handler").info("inside the handler")
        return web.json_response({"ok": True})

    seen: list[tuple[str, str, int]] = []
    app = web.Application(middlewares=[request_log_middleware(lambda m, r, s, _: seen.append((m, r, s)))])
    app.router.add_get("/hello/{name}", hello)
    client = await aiohttp_client(app)

    caplog.set_level(logging.INFO)
    response = await client.get("/hello/alice", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    inside = [r for r in caplog.records if r.getMessage() == "inside the handler"]
    assert inside and inside[0].request_id == "abc-123"
    assert seen == [("GET", "/hello/{name}", 200)]

    response = await client.get("/hello/bob", headers={"X-Request-Id": "not a token!"})
    generated = response.headers["X-Request-Id"]
    assert generated != "not a token!" and len(generated) == 32


async def test_unmatched_routes_are_logged_with_their_status(aiohttp_client, caplog) -> None:
    app = web.Application(middlewares=[request_log_middleware()])
    client = await aiohttp_client(app)
    caplog.set_level(logging.INFO, logger="ensign.request")
    assert (await client.get("/nowhere")).status == 404
    assert [r.getMessage() for r in caplog.records if r.name == "ensign.request"] == ["GET unmatched 404"]


# -- log_request_line: the request's line, written directly when only our handler listens ---------


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """configure_logging() as a service runs it, its handler writing to a string; undone after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs._configured)
    stream = io.StringIO()
    try:
        configure_logging("INFO", redact={"REDIS_URL": SECRET_URL})
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        yield stream
    finally:
        root.handlers[:], level, logs._configured = saved[0], saved[1], saved[2]
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_direct_line_is_the_line_logging_writes(configured) -> None:
    logger = logging.getLogger("test.requests.direct")
    fields = {"outcome": "stored", "bytes": 6219, "ms": 1.5, "ok": True, "none": None, "odd": ValueError("x"),
              "url": SECRET_URL}
    token = request_id_var.set("req-1")
    try:
        log_request_line(logger, "POST /rpc 200", fields)  # only configure_logging's handler: direct
        passing = logging.Filter()  # a filter (passing everything) sends it through logging instead
        logger.addFilter(passing)
        try:
            log_request_line(logger, "POST /rpc 200", fields)
        finally:
            logger.removeFilter(passing)
    finally:
        request_id_var.reset(token)
    direct, through_logging = _lines(configured)
    assert direct.pop("ts") <= through_logging.pop("ts")
    assert direct == through_logging
    assert list(direct) == list(through_logging)  # the same order of keys too
    assert direct["request_id"] == "req-1" and direct["url"] == "<REDIS_URL>" and direct["odd"] == "x"


def test_another_listener_gets_the_request_line_as_a_record(configured, caplog) -> None:
    logger = logging.getLogger("test.requests.caplog")
    with caplog.at_level(logging.INFO, logger="test.requests.caplog"):
        log_request_line(logger, "GET /health 200", {"status": 200})
    assert [(r.getMessage(), r.status) for r in caplog.records] == [("GET /health 200", 200)]
    assert _lines(configured)[0]["msg"] == "GET /health 200"  # and the service's own line is written


def test_a_request_line_below_the_level_is_not_written(configured) -> None:
    logger = logging.getLogger("test.requests.quiet")
    logger.setLevel(logging.WARNING)
    log_request_line(logger, "POST /rpc 200", {"status": 200})
    assert configured.getvalue() == ""


def test_new_request_ids_are_unique_also_in_a_forked_worker() -> None:
    ids = [new_request_id(None) for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert new_request_id("client-id.7") == "client-id.7"
    assert new_request_id("has space") != "has space"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, " ".join(new_request_id(None) for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = set(pipe.read().decode().split())
    os.waitpid(pid, 0)
    parent = {new_request_id(None) for _ in range(10)}
    assert len(child) == 10 and not child & parent and not child & set(ids)
