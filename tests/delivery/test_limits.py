"""Quotas and rate limits (issue 10, "Nothing limits storage or rate"), on the real Redis.

Each finding has its test: the receiver's queue quotas (messages, bytes; the owner may lower them),
a sender's flood stopped with 429 + Retry-After, the per-pair bucket, inbox pages capped in bytes,
socket caps per account and per address, the per-address limit of requests without a session and
of login attempts (X-Forwarded-For believed only from a trusted proxy), expiry by Redis's clock,
and de-duplication scoped per sender. The limiter itself is tested on Redis here and on the
three-master cluster in test_limits_cluster.py.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    bearer,
    chain,
    clock,
    directory,
    ds_settings,
    envelope,
    login,
    rpc_submit,
    signup,
    users,
)
from tests.delivery.test_ds_push import Socket

from delivery.app import create_app
from delivery.errors import RateLimited
from delivery.keys import queue_keys, rate_key, socket_key
from delivery.limits import BucketMemory, RateLimiter, SocketSlots
from delivery.queue import MessageQueue
from delivery.appkeys import queue_key
from delivery.sweeper import run_sweep
from ensign.config import DeliveryLimits, RateLimit
from ensign.errors import SignatureError
from ensign.protocol.crypto import sign
from ensign.protocol.envelope import metadata_signature_payload, open_envelope
from ensign.protocol.models import EncryptionEnvelop

OFF = DeliveryLimits(sender=None, pair=None, address=None, login=None)


async def client_with(aiohttp_client, redis, ds_settings, directory, chain, clock, **limits: Any) -> Any:
    settings = replace(ds_settings, limits=replace(OFF, **limits))
    app = create_app(settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    return await aiohttp_client(app)


@pytest.fixture
def service(aiohttp_client, redis, ds_settings, directory, chain, clock, users):
    """``await service(**limits)``: a client of the app with those limits (others off), every
    user signed up."""

    async def make(**limits: Any) -> Any:
        client = await client_with(aiohttp_client, redis, ds_settings, directory, chain, clock, **limits)
        for user in users:
            await signup(client, user)
        return client

    return make


async def submit(client: Any, env: dict[str, Any]) -> tuple[int, dict[str, Any], Any]:
    resp = await client.post("/rpc", json={**rpc_submit(env), "id": 1})
    return resp.status, await resp.json(), resp.headers


def assert_429(status: int, body: dict[str, Any], headers: Any, *, code: int, error: str, limit: str) -> None:
    assert status == 429, body
    assert body["error"]["code"] == code
    assert body["error"]["data"]["error"] == error
    assert body["error"]["data"]["details"]["limit"] == limit
    assert int(headers["Retry-After"]) >= 1


# -- the receiver's quotas ---------------------------------------------------------------------


async def test_the_queue_cap_is_enforced(service, redis, ds_settings, users) -> None:
    alice, bob = users[0], users[1]
    client = await service(max_queued_messages=3)
    for n in range(3):
        assert (await submit(client, envelope(alice, bob, ds_settings, f"m{n}")))[0] == 200
    assert_429(*await submit(client, envelope(alice, bob, ds_settings, "one too many")),
               code=-32017, error="queue_full", limit="queued_messages")
    assert await redis.zcard(queue_keys(ds_settings.redis.prefix, bob.address).queue) == 3


async def test_the_byte_quota_holds_and_the_owner_may_lower_it(
    service, ds_settings, users, redis
) -> None:
    alice, bob = users[0], users[1]
    client = await service(max_queued_bytes=1_000_000)
    token = await login(client, bob)
    big = "x" * 20_000
    # The owner cannot raise the service's quota, only lower it.
    resp = await client.put(f"/account/{bob.name}/settings", json={"maxQueuedBytes": 2_000_000}, headers=bearer(token))
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_settings"
    resp = await client.put(f"/account/{bob.name}/settings", json={"maxQueuedBytes": 50_000}, headers=bearer(token))
    assert resp.status == 200
    stored = 0
    for n in range(5):
        status, body, headers = await submit(client, envelope(alice, bob, ds_settings, f"{n}{big}"))
        if status != 200:
            assert_429(status, body, headers, code=-32017, error="queue_full", limit="queued_bytes")
            break
        stored += 1
    assert stored == 1  # each stored record is ~2 x 20 KB (base64 of the ciphertext, postmark)
    size_key = queue_keys(ds_settings.redis.prefix, bob.address).size
    assert 20_000 < int(await redis.get(size_key)) <= 50_000
    # Acknowledging frees the bytes.
    [env] = await (await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json()
    ack = {"acknowledgements": [{"contactAddress": alice.name, "messageHash": env["metadata"]["encryptedMessageHash"]}]}
    assert (await client.post(f"/delivery/messages/{bob.name}/syncAcknowledgements", json=ack, headers=bearer(token))).status == 200
    assert await redis.exists(size_key) == 0
    assert (await submit(client, envelope(alice, bob, ds_settings, f"again{big}")))[0] == 200


# -- senders ------------------------------------------------------------------------------------


async def test_a_senders_flood_is_stopped_with_429_and_retry_after(
    service, ds_settings, users, redis
) -> None:
    alice, bob, carol = users
    client = await service(sender=RateLimit(5, 60))
    for n in range(5):
        assert (await submit(client, envelope(alice, bob if n % 2 else carol, ds_settings, f"m{n}")))[0] == 200
    # The bucket is the sender's, whoever receives.
    for receiver in (bob, carol):
        assert_429(*await submit(client, envelope(alice, receiver, ds_settings, "flood")),
                   code=-32020, error="rate_limited", limit="sender")
    # Another sender is not held back.
    assert (await submit(client, envelope(bob, carol, ds_settings, "from bob")))[0] == 200


async def test_the_pair_bucket_limits_one_sender_to_one_receiver(
    service, ds_settings, users, redis
) -> None:
    alice, bob, carol = users
    client = await service(pair=RateLimit(2, 60))
    for n in range(2):
        assert (await submit(client, envelope(alice, bob, ds_settings, f"m{n}")))[0] == 200
    assert_429(*await submit(client, envelope(alice, bob, ds_settings, "m2")), code=-32020, error="rate_limited", limit="pair")
    assert (await submit(client, envelope(alice, carol, ds_settings, "to carol")))[0] == 200


async def test_a_socket_submission_over_the_limit_is_refused(
    service, ds_settings, users, redis
) -> None:
    alice, bob = users[0], users[1]
    client = await service(sender=RateLimit(1, 60))
    token = await login(client, alice)
    s = Socket()
    try:
        await s.connect(str(client.make_url("/")), alice.name, token)
        assert (await s.next_event())[0] == "authorized"
        first = await s.client.call("submitMessage", {"envelop": envelope(alice, bob, ds_settings, "one")}, timeout=5)
        second = await s.client.call("submitMessage", {"envelop": envelope(alice, bob, ds_settings, "two")}, timeout=5)
    finally:
        await s.close()
    assert first == {"response": "success"}
    assert "sender limit" in second["error"]


# -- inbox pages --------------------------------------------------------------------------------


async def test_an_inbox_page_stops_before_its_byte_cap_and_the_cursor_goes_on(
    service, ds_settings, users, redis
) -> None:
    alice, bob = users[0], users[1]
    client = await service(page_bytes=10_000)
    token = await login(client, bob)
    texts = [f"{n}" + "y" * 3_000 for n in range(7)]
    for text in texts:
        assert (await submit(client, envelope(alice, bob, ds_settings, text)))[0] == 200
    seen: list[str] = []
    path = f"/delivery/messages/incoming/{bob.name}?limit=1000"
    sizes = []
    while True:
        resp = await client.get(path, headers=bearer(token))
        page = await resp.json()
        assert 1 <= len(page) < 7
        sizes.append(len(await resp.read()))
        seen += [open_envelope(EncryptionEnvelop.from_json(e), bob.keys.encryption, alice.keys.signing.public_key).message
                 for e in page]
        cursor = resp.headers.get("X-Next-Cursor")
        if cursor is None:
            break
        path = f"/delivery/messages/incoming/{bob.name}?limit=1000&cursor={cursor}"
    assert seen == texts
    assert max(sizes) <= 10_000


async def test_a_page_holds_one_message_larger_than_the_cap(queue: MessageQueue) -> None:
    for n in range(3):
        await queue.enqueue("0xacc", f"m{n}", b"z" * 5_000, now=1000.0 + n, ttl_seconds=600)
    first = await queue.fetch("0xacc", now=1010.0, limit=100, max_bytes=100)
    assert [m.id for m in first.items] == ["m0"]
    rest = await queue.fetch("0xacc", now=1010.0, cursor=first.next_cursor, limit=100, max_bytes=11_000)
    assert [m.id for m in rest.items] == ["m1", "m2"] and rest.next_cursor is None


# -- sockets ------------------------------------------------------------------------------------


async def test_sockets_are_capped_per_account_and_per_address(
    service, ds_settings, users, redis
) -> None:
    alice, bob = users[0], users[1]
    client = await service(sockets_per_account=2, sockets_per_address=3)
    alice_token, bob_token = await login(client, alice), await login(client, bob)
    url = str(client.make_url("/"))
    opened: list[Socket] = []

    async def handshake(name: str, token: str) -> tuple[str, Any]:
        opened.append(Socket())
        await opened[-1].connect(url, name, token)
        return await opened[-1].next_event()

    try:
        for _ in range(2):
            assert (await handshake(alice.name, alice_token))[0] == "authorized"
        assert await handshake(alice.name, alice_token) == (
            "unauthorized", {"error": "this account already holds 2 sockets, its limit"})
        # Bob's first socket fits; his second is the address's fourth.
        assert (await handshake(bob.name, bob_token))[0] == "authorized"
        assert await handshake(bob.name, bob_token) == (
            "unauthorized", {"error": "this address already holds 3 sockets, its limit"})
        # A closed socket frees its slots (the server's disconnect handler runs after the close).
        await opened[0].close()
        account_slots = socket_key(ds_settings.redis.prefix, "account", alice.address)
        for _ in range(50):
            if await redis.zcard(account_slots) == 1:
                break
            await asyncio.sleep(0.1)
        assert (await handshake(alice.name, alice_token))[0] == "authorized"
    finally:
        for s in opened:
            await s.close()


# -- client addresses ---------------------------------------------------------------------------


async def test_requests_without_a_session_are_limited_per_address(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users
) -> None:
    alice = users[0]
    client = await client_with(aiohttp_client, redis, ds_settings, directory, chain, clock, address=RateLimit(3, 60))
    for _ in range(3):
        assert (await client.get(f"/profile/{alice.name}")).status == 404  # no account: still counted
    # Without a trusted proxy, X-Forwarded-For is the client's own word and changes nothing.
    resp = await client.get(f"/profile/{alice.name}", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    body = await resp.json()
    assert body["error"] == "rate_limited" and body["details"]["limit"] == "address"
    # JSON-RPC gets its own error object.
    status, body, headers = await submit(client, envelope(alice, users[1], ds_settings))
    assert_429(status, body, headers, code=-32020, error="rate_limited", limit="address")
    # Operations routes are not counted.
    assert (await client.get("/hello")).status == 200


async def test_a_trusted_proxy_passes_the_client_address_on(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users
) -> None:
    client = await client_with(aiohttp_client, redis, ds_settings, directory, chain, clock,
                               address=RateLimit(1, 60), trusted_proxies=("127.0.0.0/8", "::1"))
    name = users[0].name
    # The right-most untrusted entry is the client; what it wrote further left is ignored.
    first = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    assert (await client.get(f"/profile/{name}", headers=first)).status == 404
    assert (await client.get(f"/profile/{name}", headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})).status == 429
    assert (await client.get(f"/profile/{name}", headers={"X-Forwarded-For": "203.0.113.8"})).status == 404
    # IPv6 clients count by their /64.
    assert (await client.get(f"/profile/{name}", headers={"X-Forwarded-For": "2001:db8:1:2::1"})).status == 404
    assert (await client.get(f"/profile/{name}", headers={"X-Forwarded-For": "2001:db8:1:2::ffff"})).status == 429


async def test_login_attempts_are_limited_per_address(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users
) -> None:
    alice = users[0]
    client = await client_with(aiohttp_client, redis, ds_settings, directory, chain, clock, login=RateLimit(3, 600))
    await signup(client, alice)  # the dm3 sign-up answers a challenge: it counts as an attempt
    token = await login(client, alice)  # GET and POST /auth: two more
    resp = await client.get(f"/auth/{alice.name}")
    assert resp.status == 429
    body = await resp.json()
    assert body["error"] == "rate_limited" and body["details"]["limit"] == "login"
    assert int(resp.headers["Retry-After"]) >= 100  # one attempt refills in 200 s
    # A session is not a login: its routes still answer.
    assert (await client.get(f"/account/{alice.name}", headers=bearer(token))).status == 200


# -- Redis's clock ------------------------------------------------------------------------------


async def test_expiry_follows_redis_clock_not_the_processes(redis: aioredis.Redis, redis_prefix: str) -> None:
    queue = MessageQueue(redis, prefix=redis_prefix, require_account=False, redis_time=True)
    lagging, ahead = time.time() - 3600, time.time() + 7200
    # A process whose clock is an hour behind stores a message for ten minutes.
    assert await queue.enqueue("0xacc", "m1", b"env", now=lagging, ttl_seconds=600)
    seconds, micros = await redis.time()
    redis_now = seconds + micros / 1e6
    # A reader with the right clock still sees it, and a sweeper two hours ahead keeps it.
    [item] = (await queue.fetch("0xacc", now=time.time())).items
    assert abs(item.received_at - redis_now) < 60
    assert item.expires_at == pytest.approx(item.received_at + 600, abs=0.01)
    assert await run_sweep(queue, clock=lambda: ahead) == 0
    assert await queue.get("0xacc", "m1", now=ahead) is not None
    assert await queue.count("0xacc", now=ahead) == 1


def test_the_service_queue_uses_redis_clock_unless_a_test_clock_is_given(redis, ds_settings, directory, chain, clock) -> None:
    production = create_app(ds_settings, redis=redis, directory=directory, chain=chain, sweep_interval=None)
    assert production[queue_key].redis_time
    controlled = create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    assert not controlled[queue_key].redis_time


# -- de-duplication -----------------------------------------------------------------------------


def forged(env: dict[str, Any], message_hash: str, secret_key: str) -> dict[str, Any]:
    """``env`` (source form) claiming ``message_hash``, re-signed by its own sender's key."""
    placeholder = base64.b64encode(bytes(64)).decode()  # the payload leaves the signature out
    metadata = {**env["metadata"], "messageHash": message_hash, "signature": placeholder}
    unsigned = EncryptionEnvelop.from_json({**env, "metadata": metadata}).metadata
    metadata["signature"] = sign(secret_key, metadata_signature_payload(unsigned))
    return {**env, "metadata": metadata}


async def test_one_sender_cannot_shadow_anothers_message(service, ds_settings, users) -> None:
    alice, bob, carol = users
    client = await service()
    token = await login(client, bob)
    real = envelope(alice, bob, ds_settings, "the real one", form="source")
    claimed = real["metadata"]["messageHash"]
    # Carol learned (or guessed) the hash of Alice's message and submits first under it.
    fake = forged(envelope(carol, bob, ds_settings, "shadow", form="source"), claimed, carol.keys.signing.secret_key)
    assert (await submit(client, fake))[0] == 200
    assert (await submit(client, real))[0] == 200
    assert (await submit(client, real))[0] == 200  # Alice's resubmission is still stored once
    page = await (await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json()
    by_sender = {env["metadata"]["deliveryInformation"]["from"]: EncryptionEnvelop.from_json(env) for env in page}
    assert sorted(by_sender) == sorted([alice.name, carol.name])
    opened = open_envelope(by_sender[alice.name], bob.keys.encryption, alice.keys.signing.public_key)
    assert opened.message == "the real one"
    # Carol's claim is caught by Bob's client, which alone can check a source-form hash.
    with pytest.raises(SignatureError, match="messageHash"):
        open_envelope(by_sender[carol.name], bob.keys.encryption, carol.keys.signing.public_key)
    # Bob acknowledges Alice's message by its hash, naming her as the contact, as dm3 clients do.
    ack = {"acknowledgements": [{"contactAddress": alice.name, "messageHash": claimed}]}
    resp = await client.post(f"/delivery/messages/{bob.name}/syncAcknowledgements", json=ack, headers=bearer(token))
    assert (await resp.json())["acknowledged"] >= 1
    left = await (await client.get(f"/delivery/messages/incoming/{bob.name}", headers=bearer(token))).json()
    assert all(env["metadata"]["deliveryInformation"]["from"] != alice.name for env in left)


# -- the limiter on Redis -----------------------------------------------------------------------


async def test_a_bucket_refuses_when_empty_refills_and_vanishes_when_full(redis, redis_prefix) -> None:
    limiter = RateLimiter(redis, prefix=redis_prefix)
    fast = RateLimit(2, 1)  # two at once, two per second
    await limiter.take("t", fast, "s")
    await limiter.take("t", fast, "s")
    with pytest.raises(RateLimited) as refused:
        await limiter.take("t", fast, "s")
    assert refused.value.retry_after == 1 and refused.value.details["limit"] == "t"
    await asyncio.sleep(0.6)  # one token back
    await limiter.take("t", fast, "s")
    await limiter.take("t", fast, "other")  # another subject has its own bucket
    await asyncio.sleep(1.2)
    assert await redis.exists(rate_key(redis_prefix, "t", "s")) == 0  # full again: no state kept
    await limiter.take("t", None, "s")  # a limit that is off always passes


async def test_buckets_taken_together_are_taken_all_or_none(redis, redis_prefix) -> None:
    limiter = RateLimiter(redis, prefix=redis_prefix)
    roomy, tight = RateLimit(5, 3600), RateLimit(1, 3600)
    both = [("sender", roomy, "a"), ("pair", tight, "a>b"), ("off", None, "a")]
    await limiter.take_all(both)
    with pytest.raises(RateLimited) as refused:
        await limiter.take_all(both)
    assert refused.value.details["limit"] == "pair"
    # The refused call took nothing from the sender's bucket: 4 of 5 tokens are left.
    tokens = float(await redis.hget(rate_key(redis_prefix, "sender", "a"), "tokens"))
    assert 3.99 < tokens < 4.01
    for _ in range(4):
        await limiter.take("sender", roomy, "a")
    with pytest.raises(RateLimited) as refused:
        await limiter.take_all([("sender", roomy, "a"), ("pair", tight, "a>c")])
    assert refused.value.details["limit"] == "sender"
    assert await redis.exists(rate_key(redis_prefix, "pair", "a>c")) == 0


async def test_an_insert_takes_its_buckets_in_its_own_call_all_or_none(redis, redis_prefix, queue) -> None:
    limiter = RateLimiter(redis, prefix=redis_prefix)
    roomy, tight = RateLimit(5, 3600), RateLimit(1, 3600)
    buckets = [("sender", roomy, "a"), ("off", None, "a"), ("pair", tight, "a>b")]
    queue_key_ = queue_keys(redis_prefix, "0xb").queue
    published = redis.pubsub()
    await published.subscribe(queue_keys(redis_prefix, "0xb").channel)
    await published.get_message(timeout=1)  # the subscription's confirmation
    try:
        assert await queue.enqueue("0xb", "m1", b"one", now=1000.0, ttl_seconds=600, sender="0xa",
                                   takes=limiter.takes(buckets))
        assert (await published.get_message(timeout=1))["data"] == b"m1"
        assert 3.99 < float(await redis.hget(rate_key(redis_prefix, "sender", "a"), "tokens")) < 4.01
        # The pair's bucket is empty: refused, naming it; nothing stored, published or taken.
        with pytest.raises(RateLimited) as refused:
            await queue.enqueue("0xb", "m2", b"two", now=1001.0, ttl_seconds=600, sender="0xa",
                                takes=limiter.takes(buckets))
        assert refused.value.details["limit"] == "pair" and refused.value.retry_after >= 1
        assert await redis.zrange(queue_key_, 0, -1) == [b"m1"]
        assert await published.get_message(timeout=0.2) is None
        assert 3.99 < float(await redis.hget(rate_key(redis_prefix, "sender", "a"), "tokens")) < 4.01
    finally:
        await published.aclose()
    # Taken whatever the insert answers, as when taken in a call of their own before it: a
    # resubmission (already queued) takes its tokens too.
    assert not await queue.enqueue("0xb", "m1", b"one", now=1002.0, ttl_seconds=600, sender="0xa",
                                   takes=limiter.takes([("sender", roomy, "a")]))
    assert 2.99 < float(await redis.hget(rate_key(redis_prefix, "sender", "a"), "tokens")) < 3.01
    # Every limit off: the plain insert.
    assert await queue.enqueue("0xb", "m3", b"three", now=1003.0, ttl_seconds=600, takes=limiter.takes([("off", None, "a")]))
    await limiter.aclose()


async def test_a_sender_over_its_limit_has_nothing_stored(service, ds_settings, users, redis) -> None:
    alice, bob = users[0], users[1]
    client = await service(sender=RateLimit(2, 3600), pair=RateLimit(10, 3600))
    for n in range(2):
        assert (await submit(client, envelope(alice, bob, ds_settings, f"m{n}")))[0] == 200
    assert_429(*await submit(client, envelope(alice, bob, ds_settings, "m2")), code=-32020, error="rate_limited", limit="sender")
    assert await redis.zcard(queue_keys(ds_settings.redis.prefix, bob.address).queue) == 2
    # The refusal took nothing from the pair's bucket (all or none, in the insert's call).
    pair_tokens = [float(await redis.hget(key, "tokens")) for key in await redis.keys(f"{ds_settings.redis.prefix}rate:pair:*")]
    assert len(pair_tokens) == 1 and 7.99 < pair_tokens[0] < 8.01


async def test_concurrent_takes_never_overdraw(redis, redis_prefix) -> None:
    limiter = RateLimiter(redis, prefix=redis_prefix)

    async def one() -> bool:
        try:
            await limiter.take("t", RateLimit(10, 3600), "s")
        except RateLimited:
            return False
        return True

    assert sum(await asyncio.gather(*(one() for _ in range(50)))) == 10


async def test_renewing_counts_every_live_lease_and_revives_none(redis, redis_prefix) -> None:
    slots = SocketSlots(redis, prefix=redis_prefix, per_account=5, per_address=5)
    await slots.acquire("a", account="0xacc", address="192.0.2.1")
    await slots.acquire("b", account="0xacc", address="192.0.2.1")
    # At once, often within the millisecond of the leases: each still counts as renewed.
    for _ in range(20):
        assert await slots.renew() == 4
    # A lease that ran out (its member gone) is not revived by the process that still holds the socket.
    members = await redis.zrange(socket_key(redis_prefix, "account", "0xacc"), 0, -1)
    await redis.zrem(socket_key(redis_prefix, "account", "0xacc"), members[0])
    assert await slots.renew() == 3
    assert await redis.zcard(socket_key(redis_prefix, "account", "0xacc")) == 1
    await slots.release("a")
    await slots.release("b")


# -- what a process remembers of its buckets ----------------------------------------------------


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_refusal_is_repeated_without_redis_until_the_bucket_refills(redis, redis_prefix) -> None:
    ticks = Ticks()
    limiter = RateLimiter(redis, prefix=redis_prefix, memory=BucketMemory(clock=ticks))
    slow = RateLimit(1, 10)  # one token per 10 s
    await limiter.take("address", slow, "192.0.2.1")
    with pytest.raises(RateLimited) as refused:
        await limiter.take("address", slow, "192.0.2.1")
    assert 9 <= refused.value.retry_after <= 10
    # Redis would now pass (a missing bucket is a full one): the process answers without asking.
    await redis.delete(rate_key(redis_prefix, "address", "192.0.2.1"))
    ticks.now += 9
    with pytest.raises(RateLimited) as again:
        await limiter.take("address", slow, "192.0.2.1")
    assert again.value.retry_after == 1 and again.value.details["limit"] == "address"
    assert await redis.exists(rate_key(redis_prefix, "address", "192.0.2.1")) == 0
    await limiter.take("address", slow, "192.0.2.2")  # another subject is asked for
    ticks.now += 1.5  # the refusal is over: Redis is asked again
    await limiter.take("address", slow, "192.0.2.1")
    await limiter.aclose()


async def test_a_process_forgets_the_least_recently_heard_bucket_first(redis, redis_prefix) -> None:
    ticks = Ticks()
    limiter = RateLimiter(redis, prefix=redis_prefix, memory=BucketMemory(clock=ticks, size=2))
    one = RateLimit(1, 3600)
    for subject in ("a", "b", "c"):  # a third refusal: "a" is forgotten, "b" and "c" still remembered
        await limiter.take("t", one, subject)
        with pytest.raises(RateLimited):
            await limiter.take("t", one, subject)
    for subject in ("a", "b", "c"):
        await redis.delete(rate_key(redis_prefix, "t", subject))
    for subject in ("b", "c"):
        with pytest.raises(RateLimited):
            await limiter.take("t", one, subject)
    await limiter.take("t", one, "a")
    # Tokens left are kept for the buckets a process lends, the least recently heard forgotten first.
    for subject in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        await limiter.take("address", RateLimit(5, 3600), subject)
    assert limiter.defer("address", RateLimit(5, 3600), "192.0.2.1") is None
    assert limiter.defer("address", RateLimit(5, 3600), "192.0.2.3") is not None
    assert limiter.defer("t", one, "a") is None  # not a bucket a process lends
    await limiter.aclose()


async def test_tokens_are_lent_no_more_than_the_bucket_last_held(redis, redis_prefix) -> None:
    limiter = RateLimiter(redis, prefix=redis_prefix)
    three = RateLimit(3, 3600)
    key = rate_key(redis_prefix, "address", "192.0.2.1")

    async def tokens() -> float:
        return float(await redis.hget(key, "tokens"))

    assert limiter.defer("address", three, "192.0.2.1") is None  # nothing heard yet: take it first
    await limiter.take("address", three, "192.0.2.1")
    first, second = limiter.defer("address", three, "192.0.2.1"), limiter.defer("address", three, "192.0.2.1")
    assert first is not None and second is not None
    assert limiter.defer("address", three, "192.0.2.1") is None  # both tokens it held are lent
    assert 1.99 < await tokens() < 2.01  # lending takes nothing
    # A loan whose request wrote nothing is settled by taking its token then.
    await limiter.settle(first)
    assert 0.99 < await tokens() < 1.01
    assert limiter.defer("address", three, "192.0.2.1") is None  # one left, still lent to the second
    # A loan claimed by a write's call is taken there, once.
    takes = await limiter.takes_for_write([("sender", RateLimit(5, 3600), "0xa")], deferred=second)
    assert takes is not None and takes.keys[0] == key
    await limiter.take_all([("sender", RateLimit(5, 3600), "0xa")], deferred=second)  # claimed: not taken twice
    await limiter.settle(second)
    assert 0.99 < await tokens() < 1.01  # the test never sent that write
    # A request that ends by an exception still pays: in the background.
    third = limiter.defer("address", three, "192.0.2.1")
    assert third is not None
    limiter.settle_soon(third)
    await limiter.aclose()  # waits for it
    assert await tokens() < 0.01


async def test_a_refused_write_leaves_its_loan_to_settle(redis, redis_prefix, queue) -> None:
    limiter = RateLimiter(redis, prefix=redis_prefix)
    roomy, one = RateLimit(5, 3600), RateLimit(1, 3600)
    await limiter.take("address", roomy, "192.0.2.1")  # heard: 4 left
    await limiter.take("sender", one, "0xa")  # the sender's only token
    deferred = limiter.defer("address", roomy, "192.0.2.1")
    assert deferred is not None
    # The insert's call is refused by the sender's bucket: all or none, so no address token either.
    takes = await limiter.takes_for_write([("sender", one, "0xa")], deferred=deferred)
    with pytest.raises(RateLimited) as refused:
        await queue.enqueue("0xb", "m1", b"one", now=1000.0, ttl_seconds=600, sender="0xa", takes=takes)
    assert refused.value.details["limit"] == "sender"
    address = rate_key(redis_prefix, "address", "192.0.2.1")
    assert 3.99 < float(await redis.hget(address, "tokens")) < 4.01
    await limiter.settle(deferred)  # so the request's end takes it
    assert 2.99 < float(await redis.hget(address, "tokens")) < 3.01
    await limiter.aclose()


async def test_a_submission_pays_its_address_token_however_it_ends(service, ds_settings, users, redis) -> None:
    alice, bob, carol = users
    client = await service(address=RateLimit(9, 3600), sender=RateLimit(2, 3600))  # 3 taken by the sign-ups
    assert (await submit(client, envelope(alice, bob, ds_settings, "m0")))[0] == 200  # token taken first
    assert (await submit(client, envelope(alice, bob, ds_settings, "m1")))[0] == 200  # taken in the insert
    # Signed by another key: refused before any write, and still counted.
    bad = envelope(alice, bob, ds_settings, "spoofed", form="source")
    bad = forged(bad, bad["metadata"]["messageHash"], carol.keys.signing.secret_key)
    status, body, _ = await submit(client, bad)
    assert status == 400 and body["error"]["data"]["error"] == "sender_not_verified", body
    # Over the sender's limit: refused by the insert's call (which took nothing), then by the
    # process's memory of that refusal; each still pays its address token.
    for n in (2, 3):
        assert_429(*await submit(client, envelope(alice, bob, ds_settings, f"m{n}")),
                   code=-32020, error="rate_limited", limit="sender")
    # Another method takes its token before it runs.
    resp = await client.post("/rpc", json={"jsonrpc": "2.0", "id": 7, "method": "dm3_getDeliveryServiceProperties", "params": []})
    assert resp.status == 200
    [address] = await redis.keys(f"{ds_settings.redis.prefix}rate:address:*")  # named by the client's keyed tag
    assert float(await redis.hget(address, "tokens")) < 0.01
    # The address is out of tokens: refused first, whatever the request.
    status, body, headers = await submit(client, envelope(carol, bob, ds_settings, "m4"))
    assert_429(status, body, headers, code=-32020, error="rate_limited", limit="address")
    assert await redis.zcard(queue_keys(ds_settings.redis.prefix, bob.address).queue) == 2


async def test_concurrent_submissions_never_pass_the_address_limit(service, ds_settings, users, redis) -> None:
    alice, bob = users[0], users[1]
    client = await service(address=RateLimit(11, 3600))  # 3 taken by the sign-ups
    assert (await submit(client, envelope(alice, bob, ds_settings, "first")))[0] == 200  # the process hears 7 left
    statuses = [r[0] for r in await asyncio.gather(
        *(submit(client, envelope(alice, bob, ds_settings, f"m{n}")) for n in range(20))
    )]
    assert statuses.count(200) == 7 and statuses.count(429) == 13
    assert await redis.zcard(queue_keys(ds_settings.redis.prefix, bob.address).queue) == 8
