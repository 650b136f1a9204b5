"""delivery.batching: script calls pipelined on the batcher's own connection.

Each caller gets its own reply or error, in any mix; and when the link to Redis breaks, stalls or
goes away, calls end as redis-py's own client would end them (a retry on a new connection, a
``TimeoutError``, a ``ConnectionError``), never hang and never get another call's reply. The links
are cut with the fault suite's TCP proxy in front of the tests' Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from delivery.batching import ScriptBatcher
from ensign.redis_client import REDIS_TIMEOUT
from tests.faults.proxy import TcpProxy

# Answers with its key's new count and its argument, or refuses when told to: each caller can
# tell its own reply from the others'.
SCRIPT = "if ARGV[1] == 'bad' then return redis.error_reply('refused') end\nreturn redis.call('INCR', KEYS[1]) .. ':' .. ARGV[1]"


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(redis_url)
    # REDIS_URL (redis://host:port) or the embedded server's Unix socket (unix:///path).
    upstream: tuple[str, int] | str = parts.path if parts.scheme == "unix" else (parts.hostname or "127.0.0.1", parts.port or 6379)
    link = await TcpProxy([upstream]).start()
    try:
        yield link
    finally:
        await link.close()


@pytest.fixture
async def proxied(redis_url: str, proxy: TcpProxy) -> AsyncIterator[aioredis.Redis]:
    db = parse_url(redis_url).get("db", 0)  # the same database as the `redis` fixture's client
    client = aioredis.from_url(f"redis://127.0.0.1:{proxy.port}/{db}", socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def linked(proxied, redis_prefix):
    """Makes a batcher on the proxied link (``timeout`` its own) whose first call has gone through;
    returns it and a call of SCRIPT on the test's counter. Closed after the test."""
    made: list[ScriptBatcher] = []

    async def make(timeout: float = REDIS_TIMEOUT) -> tuple[ScriptBatcher, Callable[[str], Awaitable[bytes]]]:
        script = proxied.register_script(SCRIPT)
        batcher = ScriptBatcher(proxied, timeout=timeout)
        made.append(batcher)
        key = f"{redis_prefix}counter"

        def call(arg: str) -> Awaitable[bytes]:
            return batcher.call(script, [key], [arg])

        assert await call("first") == b"1:first"  # the link works before the test cuts it
        return batcher, call

    yield make
    for batcher in made:
        await batcher.aclose()


async def test_batched_script_calls_get_their_own_replies_and_errors_and_load_the_script(redis, redis_prefix):
    # A script this server has never seen (its text is unique): Redis answers NOSCRIPT and each
    # call is run again alone, which loads it.
    script = redis.register_script(f"-- {redis_prefix}\n{SCRIPT}")
    batcher = ScriptBatcher(redis)
    key = f"{redis_prefix}counter"
    try:
        for _ in range(2):  # unknown, then loaded
            results = await asyncio.gather(
                *(batcher.call(script, [key], [arg]) for arg in ("a", "bad", "c")), return_exceptions=True
            )
            assert results[0].endswith(b":a") and results[2].endswith(b":c")
            assert isinstance(results[1], ResponseError) and "refused" in str(results[1])
        assert int(await redis.get(key)) == 4
    finally:
        await batcher.aclose()


@pytest.mark.parametrize("options", [{"decode_responses": True}, {"protocol": 3}, {"protocol": 3, "decode_responses": True}])
async def test_replies_and_errors_are_those_the_client_itself_gives_with_its_options(redis_url, redis_prefix, options):
    # The batcher reads its connection's replies itself: decoded text, RESP3 and the error
    # classes must come out as the client's own script call gives them.
    client = aioredis.from_url(redis_url, **options)
    script = client.register_script(f"-- {redis_prefix} options\nif ARGV[1] == 'bad' then return redis.error_reply('refused') end\n"
                                    "return {ARGV[1], redis.call('INCR', KEYS[1]), {'nested'}}")
    batcher = ScriptBatcher(client)
    key = f"{redis_prefix}options"
    try:
        direct = await script(keys=[key], args=["é"])
        batched = await batcher.call(script, [key], ["é"])
        assert type(batched[0]) is type(direct[0])
        assert batched == [direct[0], direct[1] + 1, direct[2]]
        with pytest.raises(ResponseError) as by_client:
            await script(keys=[key], args=["bad"])
        with pytest.raises(ResponseError) as by_batcher:
            await batcher.call(script, [key], ["bad"])
        assert type(by_batcher.value) is type(by_client.value) and str(by_batcher.value) == str(by_client.value)
    finally:
        await batcher.aclose()
        await client.delete(key)
        await client.aclose()


async def test_arguments_reach_redis_as_redis_py_writes_them_and_a_bad_one_fails_only_its_call(redis, redis_prefix):
    echo = redis.register_script("return ARGV")
    batcher = ScriptBatcher(redis)
    args = [0.1 + 0.2, 1e-7, 10**30, -3, "ü", b"\x00\xff"]
    try:
        direct = await echo(keys=[], args=args)
        good, bad = await asyncio.gather(batcher.call(echo, [], args), batcher.call(echo, [], [None]), return_exceptions=True)
        assert good == direct == [b"0.30000000000000004", b"1e-07", b"1" + b"0" * 30, b"-3", "ü".encode(), b"\x00\xff"]
        assert isinstance(bad, DataError)
    finally:
        await batcher.aclose()


async def test_many_callers_in_many_turns_each_get_their_own_reply(redis, redis_prefix):
    script = redis.register_script(SCRIPT)
    batcher = ScriptBatcher(redis)
    try:

        async def caller(n: int) -> None:
            for round_ in range(5):
                reply = await batcher.call(script, [f"{redis_prefix}c{n}"], [f"{n}.{round_}"])
                assert reply == f"{round_ + 1}:{n}.{round_}".encode()
                if n % 3 == 0:
                    await asyncio.sleep(0)  # callers fall out of step: writes overlap replies

        await asyncio.gather(*(caller(n) for n in range(300)))  # more than one write's worth
    finally:
        await batcher.aclose()


async def test_a_cancelled_caller_leaves_the_others_their_own_replies(redis, redis_prefix):
    script = redis.register_script(SCRIPT)
    batcher = ScriptBatcher(redis)
    key = f"{redis_prefix}counter"
    try:
        calls = [asyncio.ensure_future(batcher.call(script, [key], [str(n)])) for n in range(6)]
        await asyncio.sleep(0)  # all queued for the same write
        calls[2].cancel()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[2], asyncio.CancelledError)
        # The cancelled call still ran (it had been sent): the counts stay in step with the calls.
        assert [r.split(b":")[1] for i, r in enumerate(results) if i != 2] == [b"0", b"1", b"3", b"4", b"5"]
        assert await batcher.call(script, [key], ["after"]) == b"7:after"
    finally:
        await batcher.aclose()


async def test_a_connection_reset_while_idle_is_retried_on_a_new_one(linked, proxy, redis, redis_prefix):
    _, call = await linked()
    proxy.cut("reset")  # Redis restarted, say: the batcher's connection is dead, it does not know yet
    proxy.restore()
    assert await call("second") == b"2:second"
    assert int(await redis.get(f"{redis_prefix}counter")) == 2


async def test_calls_fail_with_a_connection_error_while_redis_cannot_be_reached(linked, proxy):
    _, call = await linked()
    proxy.cut("reset")
    results = await asyncio.gather(*(call(str(n)) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in results), results
    proxy.restore()
    assert (await call("back")).endswith(b":back")


@pytest.mark.parametrize("mode", ["blackhole", "replies"])
async def test_a_stalled_link_fails_the_waiting_calls_after_the_timeout_and_recovers(
    linked, proxy, redis, redis_prefix, mode
):
    _, call = await linked(timeout=0.4)
    proxy.cut(mode)  # "replies": Redis runs the calls, their answers never come back
    started = time.monotonic()
    results = await asyncio.gather(*(call(str(n)) for n in range(3)), return_exceptions=True)
    waited = time.monotonic() - started
    assert all(isinstance(r, RedisTimeoutError) for r in results), results
    assert 0.35 <= waited < 3.0
    proxy.restore()
    reply = await call("back")
    # A stalled call is not sent again: each ran at most once.
    ran = int(await redis.get(f"{redis_prefix}counter"))
    assert reply == f"{ran}:back".encode() and ran == (2 if mode == "blackhole" else 5)


async def test_closing_fails_waiting_calls_and_refuses_new_ones(linked, proxy):
    batcher, call = await linked()
    proxy.cut("replies")
    waiting = asyncio.ensure_future(call("never answered"))
    await asyncio.sleep(0.1)
    await batcher.aclose()
    with pytest.raises(RedisConnectionError):
        await waiting
    with pytest.raises(RedisConnectionError):
        await call("late")
