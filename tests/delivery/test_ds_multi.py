"""ensign_submitMultiMessage: one envelope, verified once, a copy per receiver (real Redis)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    DS_NAME,
    User,
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    dump,
    envelope,
    login,
    rpc_submit,
    signup,
    users,
)

from delivery.app import create_app
from delivery.keys import queue_keys
from delivery.multi_intake import ForwardRecipient, RecipientOutcome
from ensign.config import RateLimit
from ensign.protocol.models import UserProfile
from ensign.protocol.multi import MultiCopy, MultiDeliveryInformation, MultiEnvelope, build_multi_envelope, create_multi_message, open_copy
from ensign.protocol.postmark import open_postmark, verify_postmark
from ensign.protocol.profile import sign_profile


@pytest.fixture(scope="module")
def more_users() -> list[User]:
    """Carol (signed up here), Erin (a profile listing only this service, no account) and Frank
    (a profile listing only another service)."""
    carol, erin, frank = User.create(), User.create(), User.create()
    elsewhere = sign_profile(
        frank.private_key,
        UserProfile(
            public_encryption_key=frank.keys.encryption.public_key,
            public_signing_key=frank.keys.signing.public_key,
            delivery_services=("ds.elsewhere.eth",),
        ),
    )
    return [carol, erin, replace(frank, profile=elsewhere)]


@pytest.fixture
def names(directory, more_users) -> None:
    """Carol, Erin and Frank in the directory beside the shared users."""
    carol, erin, frank = more_users
    directory.add(carol, "carol.user.ensign.eth")
    directory.add(erin, "erin.user.ensign.eth")
    directory.add(frank, "frank.user.ensign.eth")


def multi(sender: User, receivers: Sequence[User], settings: Any, text: str = "hi all", *, to: Sequence[str] | None = None) -> dict[str, Any]:
    names = list(to) if to is not None else [r.name for r in receivers]
    message = create_multi_message(names, sender.name, text, sender.keys.signing.secret_key, timestamp=1_700_000_000_000)
    env = build_multi_envelope(
        message, sender.keys.signing.secret_key, {n: r.keys.encryption.public_key for n, r in zip(names, receivers)},
        settings.keys.encryption_public_key,
    )
    return env.to_json()


def rpc_multi(env: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "ensign_submitMultiMessage", "params": [json.dumps(env)]}


async def submit(client: Any, env: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post("/rpc", json=rpc_multi(env))
    assert resp.status == 200, await resp.text()
    result = (await resp.json())["result"]
    assert result["id"] == env["metadata"]["encryptedMessageHash"]
    return result["recipients"]  # type: ignore[no-any-return]


async def inbox(client: Any, user: User) -> list[dict[str, Any]]:
    token = await login(client, user)
    resp = await client.get(f"/delivery/messages/incoming/{user.name}", headers=bearer(token))
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


async def test_three_receivers_each_decrypt_their_copy(ds_client, users, more_users, names, ds_settings, clock) -> None:
    alice, bob, carol = users[0], users[1], more_users[0]
    receivers = [bob, users[2], carol]
    for user in (alice, *receivers):
        await signup(ds_client, user)
    env = multi(alice, receivers, ds_settings, "hello three")

    outcomes = await submit(ds_client, env)

    assert outcomes == [{"to": r.name, "status": "stored"} for r in receivers]
    for receiver in receivers:
        [stored] = await inbox(ds_client, receiver)
        copy = MultiCopy.from_json(stored)
        assert copy.delivery_information.to == receiver.name
        assert copy.message == env["message"]
        message = open_copy(copy, receiver.keys.encryption, alice.keys.signing.public_key)
        assert message.message == "hello three"
        postmark = open_postmark(stored["postmark"], receiver.keys.encryption)
        assert postmark.incomming_timestamp == clock.ms
        assert verify_postmark(postmark, env["message"], ds_settings.keys.signing_public_key)


async def test_a_receiver_without_account_is_refused_and_the_others_stored(
    ds_client, users, more_users, names, ds_settings, redis, redis_prefix
) -> None:
    alice, bob, carol, erin = users[0], users[1], more_users[0], more_users[1]
    for user in (alice, bob, carol):
        await signup(ds_client, user)
    env = multi(alice, [bob, erin, carol], ds_settings)

    outcomes = await submit(ds_client, env)

    assert [o["status"] for o in outcomes] == ["stored", "refused", "stored"]
    assert outcomes[1]["error"]["code"] == "receiver_without_account"
    assert await redis.zcard(queue_keys(redis_prefix, bob.address).queue) == 1
    assert await redis.zcard(queue_keys(redis_prefix, carol.address).queue) == 1
    assert await redis.exists(queue_keys(redis_prefix, erin.address).queue) == 0


async def test_an_unresolved_receiver_is_refused_alone(ds_client, users, names, ds_settings) -> None:
    alice, bob = users[0], users[1]
    for user in (alice, bob):
        await signup(ds_client, user)
    env = multi(alice, [bob, users[2]], ds_settings, to=[bob.name, "nobody.user.ensign.eth"])
    outcomes = await submit(ds_client, env)
    assert outcomes[0] == {"to": bob.name, "status": "stored"}
    assert outcomes[1]["error"]["code"] == "receiver_unknown"


async def test_resubmission_is_a_duplicate_for_each_receiver_and_stored_once(
    ds_client, users, more_users, names, ds_settings, redis, redis_prefix
) -> None:
    alice, bob, carol = users[0], users[1], more_users[0]
    for user in (alice, bob, carol):
        await signup(ds_client, user)
    env = multi(alice, [bob, carol], ds_settings)
    assert [o["status"] for o in await submit(ds_client, env)] == ["stored", "stored"]
    assert [o["status"] for o in await submit(ds_client, env)] == ["duplicate", "duplicate"]
    for user in (bob, carol):
        assert await redis.zcard(queue_keys(redis_prefix, user.address).queue) == 1
    metrics = await (await ds_client.get("/metrics")).text()
    assert "ensign_ds_messages_total 2.0" in metrics
    assert "ensign_ds_duplicates_total 2.0" in metrics


async def test_a_receiver_hosted_elsewhere_is_refused_by_default(ds_client, users, more_users, names, ds_settings) -> None:
    alice, bob, frank = users[0], users[1], more_users[2]
    for user in (alice, bob):
        await signup(ds_client, user)
    outcomes = await submit(ds_client, multi(alice, [frank, bob], ds_settings))
    assert outcomes[0]["status"] == "refused"
    assert outcomes[0]["error"]["code"] == "receiver_elsewhere"
    assert "ds.elsewhere.eth" in outcomes[0]["error"]["message"]
    assert outcomes[1] == {"to": bob.name, "status": "stored"}


async def test_receivers_hosted_elsewhere_go_to_the_forward_hook(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users, more_users, names
) -> None:
    calls: list[tuple[MultiEnvelope, MultiDeliveryInformation, str, list[ForwardRecipient]]] = []

    async def forward(envelope, info, sender, recipients):  # type: ignore[no-untyped-def]
        calls.append((envelope, info, sender.address, list(recipients)))
        return [RecipientOutcome(r.name, "forwarded") for r in recipients]

    app = create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None,
                     forward=forward)
    client = await aiohttp_client(app)
    alice, bob, frank = users[0], users[1], more_users[2]
    for user in (alice, bob):
        await signup(client, user)
    env = multi(alice, [bob, frank], ds_settings)

    outcomes = await submit(client, env)

    assert outcomes == [{"to": bob.name, "status": "stored"}, {"to": frank.name, "status": "forwarded"}]
    [(envelope, info, sender, recipients)] = calls
    assert envelope.to_json() == env
    assert info.to == (bob.name, frank.name) and info.from_ == alice.name and sender == alice.address
    assert [(r.index, r.name, r.profile.address) for r in recipients] == [(1, frank.name, frank.address)]


async def test_a_tampered_envelope_is_refused_whole_and_nothing_is_stored(
    ds_client, users, more_users, names, ds_settings, redis, redis_prefix
) -> None:
    alice, bob, carol = users[0], users[1], more_users[0]
    for user in (alice, bob, carol):
        await signup(ds_client, user)
    env = multi(alice, [bob, carol], ds_settings)
    env["metadata"]["keys"].reverse()
    before = await dump(redis, redis_prefix)
    resp = await ds_client.post("/rpc", json=rpc_multi(env))
    assert resp.status == 400
    assert (await resp.json())["error"]["data"]["error"] == "sender_not_verified"
    assert await dump(redis, redis_prefix) == before


async def test_an_envelope_signed_by_someone_else_is_refused(ds_client, users, names, ds_settings) -> None:
    alice, bob = users[0], users[1]
    for user in (alice, bob):
        await signup(ds_client, user)
    message = create_multi_message([bob.name], alice.name, "spoof", users[2].keys.signing.secret_key)
    env = build_multi_envelope(message, users[2].keys.signing.secret_key, {bob.name: bob.keys.encryption.public_key},
                               ds_settings.keys.encryption_public_key).to_json()
    resp = await ds_client.post("/rpc", json=rpc_multi(env))
    assert (await resp.json())["error"]["data"]["error"] == "sender_not_verified"


@pytest.fixture
def small_settings(ds_settings):  # type: ignore[no-untyped-def]
    limits = replace(ds_settings.limits, max_recipients=2, sender=RateLimit(5, 60), pair=None)
    return replace(ds_settings, limits=limits)


async def test_recipient_limits_are_refused_with_their_codes(
    aiohttp_client, redis, small_settings, directory, chain, clock, users, more_users, names
) -> None:
    app = create_app(small_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    client = await aiohttp_client(app)
    alice, bob, carol = users[0], users[1], more_users[0]
    for user in (alice, bob, carol):
        await signup(client, user)

    resp = await client.post("/rpc", json=rpc_multi(multi(alice, [bob, carol, users[2]], small_settings)))
    assert resp.status == 400
    body = await resp.json()
    assert (body["error"]["code"], body["error"]["data"]["error"]) == (-32031, "too_many_recipients")

    # Five sender tokens: two receivers twice take four, a third envelope of two finds one left.
    for text in ("one", "two"):
        assert [o["status"] for o in await submit(client, multi(alice, [bob, carol], small_settings, text))] == ["stored"] * 2
    resp = await client.post("/rpc", json=rpc_multi(multi(alice, [bob, carol], small_settings, "three")))
    assert resp.status == 429
    assert (await resp.json())["error"]["data"]["error"] == "rate_limited"


async def test_single_dm3_envelopes_still_work_beside_multi_ones(ds_client, users, more_users, names, ds_settings) -> None:
    alice, bob, carol = users[0], users[1], more_users[0]
    for user in (alice, bob, carol):
        await signup(ds_client, user)
    resp = await ds_client.post("/rpc", json=rpc_submit(envelope(alice, bob, ds_settings, "single")))
    assert (await resp.json())["result"] == "OK"
    await submit(ds_client, multi(alice, [bob, carol], ds_settings))
    stored = await inbox(ds_client, bob)
    assert [s["metadata"]["version"] for s in stored] == ["v1", "ensign-multi-v1"]


async def test_size_limits_refuse_the_envelope_or_each_copy(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users, more_users, names
) -> None:
    alice, bob, carol = users[0], users[1], more_users[0]
    # Copies of about 3.3 KB against a 3,000-byte limit; the envelope may grow 1,024 B per receiver.
    small = replace(ds_settings, message_size_limit=3_000)
    client = await aiohttp_client(create_app(small, redis=redis, directory=directory, chain=chain, clock=clock,
                                             sweep_interval=None))
    for user in (alice, bob, carol):
        await signup(client, user)
    outcomes = await submit(client, multi(alice, [bob, carol], small))
    assert [(o["status"], o["error"]["code"]) for o in outcomes] == [("refused", "message_too_large")] * 2

    tight = replace(small, limits=replace(small.limits, max_recipients=2))
    client = await aiohttp_client(create_app(tight, redis=redis, directory=directory, chain=chain, clock=clock,
                                             sweep_interval=None))
    resp = await client.post("/rpc", json=rpc_multi(multi(alice, [bob, carol], tight)))
    assert resp.status == 413
    assert (await resp.json())["error"]["data"]["error"] == "message_too_large"


async def test_a_failing_forward_hook_refuses_only_the_receivers_it_was_given(
    aiohttp_client, redis, ds_settings, directory, chain, clock, users, more_users, names
) -> None:
    from ensign.errors import ServiceUnavailable

    async def forward(envelope, info, sender, recipients):  # type: ignore[no-untyped-def]
        raise ServiceUnavailable("the other delivery service cannot be reached")

    client = await aiohttp_client(create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock,
                                             sweep_interval=None, forward=forward))
    alice, bob, frank = users[0], users[1], more_users[2]
    for user in (alice, bob):
        await signup(client, user)
    outcomes = await submit(client, multi(alice, [bob, frank], ds_settings))
    assert outcomes[0] == {"to": bob.name, "status": "stored"}
    assert (outcomes[1]["status"], outcomes[1]["error"]["code"]) == ("refused", "unavailable")
