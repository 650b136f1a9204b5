"""Forwarding between two delivery services in one stack (``specs/delivery.md`` §4.5).

The SDK stack of tests/client/sdk_stack.py: backend → gateway → embedded chain, and two delivery
services (``ds.ensign.eth``, ``ds2.ensign.eth``) with their own keys, ports and Redis prefixes,
each published in ENS. Bob's profile lists both, in that order; his account is on the second only.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from delivery.forwarder import Forwarder
from delivery.keys import queue_keys
from delivery.metrics import DeliveryMetrics
from delivery.limits import RateLimiter
from ensign.config import ForwardingSettings, RateLimit
from ensign.ens.lookup import LinkPolicy
from ensign.protocol.envelope import build_envelope, envelope_id
from ensign.protocol.forwarding import build_forwarding
from ensign.protocol.crypto import EncryptionKeyPair
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.message import create_message
from ensign.protocol.models import DeliveryServiceProfile, EncryptionEnvelop
from ensign.protocol.postmark import verify_postmark
from ensign.protocol.profile import sign_profile
from ensign.client import Client, DeliveryError
from tests.client.sdk_stack import DS_NAMES, DeliveryService, SdkStack, sdk_stack  # noqa: F401
from tests.delivery.ds_helpers import MemoryDirectory, Resolved, User, make_settings
from tests.delivery.ds_helpers import chain, clock, directory, ds_client, ds_settings, users  # noqa: F401  (fixtures)
from tests.delivery.ds_helpers import envelope as build_test_envelope

FIRST, SECOND = DS_NAMES


async def _users(sdk_stack: SdkStack, *, bob_services: tuple[str, ...] = DS_NAMES, bob_account: str | None = SECOND) -> tuple[Client, Client]:
    alice = sdk_stack.client()
    bob = sdk_stack.client(config=sdk_stack.config(delivery_services=bob_services))
    await alice.setup()
    await bob.publish_profile(bob_services)
    if bob_account is not None:
        await bob.create_account(bob_account)
    return alice, bob


async def _envelope(alice: Client, bob: Client, ds: DeliveryService, text: str) -> EncryptionEnvelop:
    """Alice's envelope for Bob, its delivery information encrypted to ``ds`` (as a dm3 client makes it)."""
    keys = await alice.keys()
    message = create_message(bob.name, alice.name, text, keys.signing.secret_key, timestamp=1_700_000_000_000)
    bob_keys = await bob.keys()
    return build_envelope(
        message, keys.signing.secret_key, bob_keys.encryption.public_key, ds.settings.keys.encryption_public_key
    )


async def _rpc(sdk_stack: SdkStack, ds: DeliveryService, method: str, params: list[Any]) -> tuple[int, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with sdk_stack.stack.http.post(ds.settings.url + "/rpc", json=body) as response:
        return response.status, await response.json()


async def _submit(sdk_stack: SdkStack, ds: DeliveryService, envelope: EncryptionEnvelop) -> tuple[int, Any]:
    return await _rpc(sdk_stack, ds, "dm3_submitMessage", [json.dumps(envelope.to_json())])


async def _counter(sdk_stack: SdkStack, ds: DeliveryService, line: str) -> float:
    async with sdk_stack.stack.http.get(ds.settings.url + "/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _ds_keys(ds: DeliveryService) -> EncryptionKeyPair:
    keys = ds.settings.keys
    return EncryptionKeyPair(public_key=keys.encryption_public_key, secret_key=keys.encryption_private_key)


async def test_an_envelope_for_a_receiver_without_account_is_forwarded_and_postmarked_by_the_next_service(
    sdk_stack: SdkStack, redis: Any
) -> None:
    alice, bob = await _users(sdk_stack)
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]

    envelope = await _envelope(alice, bob, first, "via the first service")
    assert await _submit(sdk_stack, first, envelope) == (200, {"jsonrpc": "2.0", "id": 7, "result": "OK"})

    # Bob reads it at the second service, as the SDK verifies any message: decrypted, signed by Alice.
    [received] = (await bob.fetch(SECOND)).messages
    assert (received.id, received.text, received.sender) == (envelope_id(envelope), "via the first service", alice.name)
    # Postmarked by the service that stored it, never by the forwarder.
    assert verify_postmark(received.postmark, envelope.message, second.signing_public_key)
    assert not verify_postmark(received.postmark, envelope.message, first.signing_public_key)
    # The first service stored nothing for Bob.
    keys = queue_keys(first.settings.redis.prefix, bob.address)
    assert await redis.exists(keys.queue, keys.messages) == 0

    assert await _counter(sdk_stack, first, 'ensign_ds_forwards_total{outcome="forwarded"}') == 1
    assert await _counter(sdk_stack, first, "ensign_ds_messages_total") == 0
    assert await _counter(sdk_stack, second, "ensign_ds_forwarded_in_total") == 1
    assert await _counter(sdk_stack, second, "ensign_ds_messages_total") == 1

    # Submitted again (a sender that got no answer repeats): still one message at the second service.
    assert (await _submit(sdk_stack, first, envelope))[0] == 200
    assert len((await bob.fetch(SECOND)).messages) == 1


async def test_the_sdk_reaches_the_receiver_through_the_first_service(sdk_stack: SdkStack) -> None:
    alice, bob = await _users(sdk_stack)
    sent = await alice.send(bob.name, "sent with the SDK")
    # The first service took it (by forwarding), so the SDK made no second attempt.
    assert (sent.delivery_service, sent.failed_attempts) == (FIRST, ())
    [received] = (await bob.fetch(SECOND)).messages
    assert (received.id, received.text) == (sent.id, "sent with the SDK")


async def test_a_next_service_that_is_down_gives_a_clear_refusal(sdk_stack: SdkStack) -> None:
    alice, bob = await _users(sdk_stack)
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]
    await second.stop()

    status, answer = await _submit(sdk_stack, first, await _envelope(alice, bob, first, "nobody home"))
    assert status == 404
    error = answer["error"]
    assert (error["code"], error["data"]["error"]) == (-32014, "receiver_without_account")
    assert error["data"]["details"] == {
        "forwarding": [{"deliveryService": SECOND, "outcome": "unreachable", "detail": "cannot connect"}]
    }
    assert f"{SECOND}: unreachable" in error["message"]
    assert await _counter(sdk_stack, first, 'ensign_ds_forwards_total{outcome="unreachable"}') == 1

    # The SDK sees the same and then fails at the second service itself.
    with pytest.raises(DeliveryError) as caught:
        await alice.send(bob.name, "nobody home")
    assert [a.delivery_service for a in caught.value.attempts] == [FIRST, SECOND]


async def test_no_account_anywhere_is_tried_once_at_the_next_service_and_never_bounced_back(sdk_stack: SdkStack) -> None:
    alice, bob = await _users(sdk_stack, bob_account=None)
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]

    status, answer = await _submit(sdk_stack, first, await _envelope(alice, bob, first, "lost"))
    assert status == 404
    [attempt] = answer["error"]["data"]["details"]["forwarding"]
    assert attempt == {"deliveryService": SECOND, "outcome": "no_account", "detail": "HTTP 404 receiver_without_account"}
    # The second service did not hand it on again (to anyone, let alone back).
    assert await _counter(sdk_stack, second, 'ensign_ds_forwards_total{outcome="forwarded"}') == 0
    assert await _counter(sdk_stack, second, 'ensign_ds_forwards_total{outcome="no_account"}') == 0


async def test_a_service_listed_last_forwards_nowhere(sdk_stack: SdkStack) -> None:
    # Bob lists the second service first: the first, listed after it, has nobody to hand on to.
    alice, bob = await _users(sdk_stack, bob_services=(SECOND, FIRST))
    first = sdk_stack.services[FIRST]
    status, answer = await _submit(sdk_stack, first, await _envelope(alice, bob, first, "wrong order"))
    assert status == 404
    assert answer["error"]["message"] == "the receiver has no account on this delivery service"
    assert "details" not in answer["error"]["data"]


async def test_an_unverified_sender_is_refused_before_anything_is_forwarded(sdk_stack: SdkStack) -> None:
    alice, bob = await _users(sdk_stack)
    first = sdk_stack.services[FIRST]
    envelope = await _envelope(alice, bob, first, "spoofed")
    keys = await alice.keys()
    message = create_message(bob.name, alice.name, "spoofed", keys.signing.secret_key)
    forged = build_envelope(
        message, random_signing_key_pair().secret_key, (await bob.keys()).encryption.public_key,
        first.settings.keys.encryption_public_key,
    )
    status, answer = await _submit(sdk_stack, first, forged)
    assert (status, answer["error"]["data"]["error"]) == (400, "sender_not_verified")
    assert await _counter(sdk_stack, first, 'ensign_ds_forwards_total{outcome="refused"}') == 0
    assert await _counter(sdk_stack, first, 'ensign_ds_forwards_total{outcome="forwarded"}') == 0
    assert (await _submit(sdk_stack, first, envelope))[0] == 200  # the genuine one goes through


async def test_forged_and_looping_notes_are_refused(sdk_stack: SdkStack) -> None:
    alice, bob = await _users(sdk_stack)
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]
    envelope = await _envelope(alice, bob, first, "forged")

    def note(*, path: tuple[str, ...], to: str, signing_key: str, to_key: str) -> dict[str, Any]:
        return build_forwarding(
            envelope, _ds_keys(first), signing_key, path=path, to=to, to_public_encryption_key=to_key
        ).to_json()

    async def refused(ds: DeliveryService, forwarding: dict[str, Any]) -> str:
        status, answer = await _rpc(sdk_stack, ds, "ensign_forwardMessage", [envelope.to_json(), forwarding])
        assert (status, answer["error"]["code"], answer["error"]["data"]["error"]) == (403, -32030, "forwarding_refused")
        return str(answer["error"]["message"])

    second_key = second.settings.keys.encryption_public_key
    # Not signed by the service it names (anyone holding the key could write it).
    forged = note(path=(FIRST,), to=SECOND, signing_key=random_signing_key_pair().secret_key, to_key=second_key)
    assert "not signed by the forwarding service" in await refused(second, forged)
    # Signed by a service Bob does not list.
    stranger = note(path=("ds9.ensign.eth",), to=SECOND, signing_key=first.settings.keys.signing_private_key, to_key=second_key)
    assert "not listed before this delivery service" in await refused(second, stranger)
    # A path that already holds the receiving service: a loop.
    looped = note(path=(SECOND, FIRST), to=SECOND, signing_key=first.settings.keys.signing_private_key, to_key=second_key)
    assert "a loop" in await refused(second, looped)
    # Two hops: only the service a sender submitted to hands on.
    longer = note(path=("ds0.ensign.eth", FIRST), to=SECOND, signing_key=first.settings.keys.signing_private_key, to_key=second_key)
    assert "at most 1" in await refused(second, longer)
    # Handed backwards: the second service is listed after the first, so it may not forward to it.
    first_key = first.settings.keys.encryption_public_key
    backwards = note(path=(SECOND,), to=FIRST, signing_key=second.settings.keys.signing_private_key, to_key=first_key)
    assert "not listed before" in await refused(first, backwards)
    # A note meant for another service.
    elsewhere = note(path=(FIRST,), to="ds3.ensign.eth", signing_key=first.settings.keys.signing_private_key, to_key=second_key)
    assert "for ds3.ensign.eth" in await refused(second, elsewhere)

    # The genuine note, as the first service writes it, is taken once.
    genuine = note(path=(FIRST,), to=SECOND, signing_key=first.settings.keys.signing_private_key, to_key=second_key)
    status, answer = await _rpc(sdk_stack, second, "ensign_forwardMessage", [envelope.to_json(), genuine])
    assert (status, answer.get("result")) == (200, "OK")
    assert len((await bob.fetch(SECOND)).messages) == 1


async def test_calls_to_one_service_are_rate_limited(sdk_stack: SdkStack, redis: Any, redis_prefix: str) -> None:
    alice, bob = await _users(sdk_stack)
    first = sdk_stack.services[FIRST]
    settings = replace(first.settings, forwarding=ForwardingSettings(rate=RateLimit(1, 60)))
    forwarder = Forwarder(
        settings, directory=sdk_stack.stack.lookup, metrics=DeliveryMetrics(), policy=LinkPolicy(allow_http=True, allow_private=True),
        limiter=RateLimiter(redis, prefix=f"{redis_prefix}fw:"),
    )
    receiver = await sdk_stack.stack.lookup.user_profile(bob.name)
    try:
        sent = await forwarder.forward(await _envelope(alice, bob, first, "one"), receiver)
        held = await forwarder.forward(await _envelope(alice, bob, first, "two"), receiver)
    finally:
        await forwarder.aclose()
    assert [a.outcome for a in sent.attempts] == ["forwarded"]
    [attempt] = held.attempts
    assert (held.delivered_to, attempt.outcome, attempt.detail) == (None, "limited", "retry after 60 s")
    assert [m.text for m in (await bob.fetch(SECOND)).messages] == ["one"]


# -- the forwarder's choices, without a second service -------------------------------------------


SETTINGS = replace(make_settings("unused:"), name=FIRST)


def _forwarder(directory: MemoryDirectory, **forwarding: Any) -> Forwarder:
    settings = replace(SETTINGS, forwarding=ForwardingSettings(**forwarding))
    return Forwarder(settings, directory=directory, metrics=DeliveryMetrics(), policy=LinkPolicy())


def _receiver(services: tuple[str, ...]) -> Resolved:
    """A receiver whose signed profile lists ``services``."""
    user = User.create()
    profile = sign_profile(user.private_key, replace(user.profile.profile, delivery_services=services))
    return Resolved(user.name, user.address, profile)


def test_only_services_listed_after_this_one_are_tried_at_most_the_configured_number() -> None:
    forwarder = _forwarder(MemoryDirectory(), max_services=2)
    listed = _receiver(("ds0.eth", FIRST.upper(), "a.eth", FIRST, "b.eth", "a.eth", "c.eth"))
    assert forwarder.next_services(listed) == ("a.eth", "b.eth")
    assert forwarder.next_services(_receiver(("a.eth", "b.eth"))) == ()  # this service is not listed
    assert _forwarder(MemoryDirectory(), enabled=False).next_services(listed) == ()


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://example.com", "must use https"),
        ("https://127.0.0.1:6379", "must point to a public host"),
        ("https://10.1.2.3", "must point to a public host"),
    ],
)
async def test_service_urls_from_ens_must_be_https_on_public_hosts(url: str, detail: str) -> None:
    directory = MemoryDirectory()
    directory.services["a.eth"] = DeliveryServiceProfile(
        public_encryption_key=random_encryption_key_pair().public_key,
        public_signing_key=random_signing_key_pair().public_key,
        url=url,
    )
    forwarder = _forwarder(directory)
    sender, receiver = User.create(), User.create()
    message = create_message(receiver.name, sender.name, "x", sender.keys.signing.secret_key)
    envelope = build_envelope(
        message, sender.keys.signing.secret_key, receiver.keys.encryption.public_key, SETTINGS.keys.encryption_public_key
    )
    outcome = await forwarder.forward(envelope, _receiver((FIRST, "a.eth")))
    [attempt] = outcome.attempts
    assert (outcome.delivered_to, attempt.outcome) == (None, "unresolved")
    assert detail in attempt.detail
    await forwarder.aclose()


async def test_malformed_forward_calls_are_refused_with_what_is_wrong(ds_client: Any, users: list[User], ds_settings: Any) -> None:
    env = build_test_envelope(users[0], users[1], ds_settings)
    valid_shape = {
        "version": "ensign-forward-v1", "path": ["ds0.eth"], "to": ds_settings.name, "envelopeId": "0x00",
        "deliveryKey": "{}", "signature": "AA==",
    }
    cases: list[tuple[list[Any], int, str]] = [
        ([], 400, "invalid_params"),
        ([env], 400, "invalid_params"),
        ([env, "note"], 400, "invalid_params"),
        ([env, {}], 403, "forwarding_refused"),
        ([env, {**valid_shape, "path": [123]}], 403, "forwarding_refused"),
        ([env, {**valid_shape, "path": [""]}], 403, "forwarding_refused"),
        ([env, valid_shape], 400, "delivery_information_unreadable"),
        (["{", valid_shape], 400, "invalid_encoding"),
        ([{"message": 1}, valid_shape], 400, "invalid_schema"),
    ]
    for params, status, code in cases:
        resp = await ds_client.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "ensign_forwardMessage", "params": params})
        answer = await resp.json()
        assert (resp.status, answer["error"]["data"]["error"]) == (status, code), params


async def test_the_next_services_answer_decides_whether_to_go_on(aiohttp_server: Any) -> None:
    async def rpc(request: web.Request) -> web.Response:
        case = request.match_info["case"]
        if case == "down":
            return web.json_response({"error": {"data": {"error": "unavailable"}}}, status=503)
        if case == "moved":
            raise web.HTTPFound("http://example.com/rpc")
        if case == "limited":
            return web.json_response({"error": {"data": {"error": "rate_limited"}}}, status=429)
        if case == "slow":
            await asyncio.sleep(3)
        return web.json_response({"jsonrpc": "2.0", "id": 1, "result": "OK"})

    app = web.Application()
    app.router.add_post("/{case}/rpc", rpc)
    server = await aiohttp_server(app)
    directory = MemoryDirectory()
    for case in ("down", "moved", "limited", "slow", "ok"):
        directory.services[f"{case}.eth"] = DeliveryServiceProfile(
            public_encryption_key=random_encryption_key_pair().public_key,
            public_signing_key=random_signing_key_pair().public_key,
            url=str(server.make_url(f"/{case}")),
        )
    settings = replace(SETTINGS, forwarding=ForwardingSettings(timeout=1, max_services=8))
    forwarder = Forwarder(
        settings, directory=directory, metrics=DeliveryMetrics(), policy=LinkPolicy(allow_http=True, allow_private=True)
    )
    sender, receiver = User.create(), User.create()
    message = create_message(receiver.name, sender.name, "x", sender.keys.signing.secret_key)
    envelope = build_envelope(
        message, sender.keys.signing.secret_key, receiver.keys.encryption.public_key, SETTINGS.keys.encryption_public_key
    )
    try:
        stopped = await forwarder.forward(envelope, _receiver((FIRST, "down.eth", "moved.eth", "slow.eth", "limited.eth", "ok.eth")))
        passed = await forwarder.forward(envelope, _receiver((FIRST, "down.eth", "ok.eth")))
    finally:
        await forwarder.aclose()
    assert [(a.service, a.outcome, a.detail) for a in stopped.attempts] == [
        ("down.eth", "failed", "HTTP 503 unavailable"),
        ("moved.eth", "failed", "HTTP 302"),
        ("slow.eth", "unreachable", "no answer within 1 s"),
        ("limited.eth", "refused", "HTTP 429 rate_limited"),
    ]
    assert stopped.delivered_to is None
    assert [a.outcome for a in passed.attempts] == ["failed", "forwarded"]
    assert passed.delivered_to == "ok.eth"
