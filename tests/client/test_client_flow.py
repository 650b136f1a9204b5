"""Two SDK users on the real stack: keys, profiles, accounts, sessions, send, push, poll, ack."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ensign.client import ApiError, DeliveryError, ReceivedMessage, Subscription
from ensign.protocol.keys import profile_keys_from_wallet
from ensign.protocol.postmark import postmark_message_hash, verify_postmark
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key


def unique_alias(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:8]}.user.ensign.eth"


async def next_message(inbox: Subscription, timeout: float = 10.0) -> ReceivedMessage:
    return await asyncio.wait_for(inbox.__anext__(), timeout)


async def test_keys_profile_accounts_send_by_name_and_alias_push_poll_verify_ack(sdk_stack: SdkStack) -> None:
    alice_key = new_private_key()
    alice, bob = sdk_stack.client(alice_key), sdk_stack.client()

    # Keys: the same as every dm3 client derives from the wallet.
    expected = profile_keys_from_wallet(alice_key)
    assert (await alice.keys()).public_keys() == expected.public_keys()

    # Profiles through the backend, accounts at the delivery service; setup is safe to repeat.
    registration = await alice.setup()
    assert (registration.name, registration.address, registration.status) == (alice.name, alice.address, "created")
    assert (await bob.setup()).status == "created"
    assert (await bob.setup()).status == "unchanged"
    alias = unique_alias("bob")
    assert (await bob.claim_alias(alias)).status == "claimed"
    account = await bob.account()
    assert (account.address, account.origin, account.delivery_service) == (bob.address, "signed", DS_NAMES[0])

    ds = sdk_stack.services[DS_NAMES[0]]
    async with bob.subscribe() as inbox:
        await inbox.wait_connected(10)
        by_name = await alice.send(bob.name, "hello by address name")
        assert by_name.delivery_service == DS_NAMES[0] and by_name.failed_attempts == ()
        pushed = await next_message(inbox)
        by_alias = await alice.send(alias, "hello by alias")
        pushed_alias = await next_message(inbox)

    assert (pushed.id, pushed.text, pushed.sender, pushed.receiver) == (by_name.id, "hello by address name", alice.name, bob.name)
    assert (pushed_alias.id, pushed_alias.text, pushed_alias.receiver) == (by_alias.id, "hello by alias", alias)
    for message in (pushed, pushed_alias):
        # What the SDK checked, checked again here: the postmark is the service's, for this envelope.
        assert message.postmark.message_hash == postmark_message_hash(message.envelope.message)
        assert verify_postmark(message.postmark, message.envelope.message, ds.signing_public_key)
        assert message.received_at == pytest.approx(sdk_stack.clock.ms, abs=5_000)
        assert message.delivery_service == DS_NAMES[0]

    # Polling: both still queued (a push removes nothing), oldest first, one per page.
    first = await bob.fetch(limit=1)
    assert [m.id for m in first.messages] == [by_name.id] and first.next_cursor is not None
    second = await bob.fetch(cursor=first.next_cursor, limit=1)
    assert [m.id for m in second.messages] == [by_alias.id]
    pages = [page async for page in bob.pages(limit=1)]
    assert [m.text for page in pages for m in page.messages] == ["hello by address name", "hello by alias"]

    # Acknowledged messages are gone.
    assert await bob.ack(*first.messages, *second.messages) == 2
    assert (await bob.fetch()).messages == ()
    assert await bob.ack(by_name.id) == 0

    # A reply the other way, fetched by polling.
    reply = await bob.send(alice.name, "hi Alice", type="REPLY", reference_message_hash=by_name.id)
    [received] = (await alice.fetch()).messages
    assert (received.id, received.type, received.message.metadata.reference_message_hash) == (reply.id, "REPLY", by_name.id)
    assert received.sender == bob.name


async def test_session_expired_at_the_service_is_renewed_by_a_new_login(sdk_stack: SdkStack) -> None:
    alice, bob = sdk_stack.client(), sdk_stack.client()
    await alice.setup()
    await bob.setup()
    sent = await alice.send(bob.name, "before expiry")
    first_token = await bob.login()
    assert [m.id for m in (await bob.fetch()).messages] == [sent.id]

    # The service's clock passes the token's expiry; the client's does not, so it learns by a 401.
    sdk_stack.clock.advance(3601)
    assert [m.id for m in (await bob.fetch()).messages] == [sent.id]
    assert await bob.login() != first_token


async def test_token_about_to_expire_on_the_client_clock_is_renewed_before_use(sdk_stack: SdkStack) -> None:
    from tests.delivery.ds_helpers import Clock

    client_clock = Clock(sdk_stack.clock.now)
    bob = sdk_stack.client(clock=client_clock)
    await bob.setup()
    first_token = await bob.login()
    assert await bob.login() == first_token  # still fresh: reused

    # 59 minutes on: within a minute of expiry, so renewed without waiting for a refusal.
    client_clock.advance(59 * 60 + 1)
    sdk_stack.clock.advance(1)
    second_token = await bob.login()
    assert second_token != first_token
    assert (await bob.account()).address == bob.address


async def test_subscription_reconnects_and_logs_in_again_after_the_service_drops_it(sdk_stack: SdkStack) -> None:
    alice, bob = sdk_stack.client(), sdk_stack.client()
    await alice.setup()
    await bob.setup()
    ds = sdk_stack.services[DS_NAMES[0]]
    async with bob.subscribe() as inbox:
        await inbox.wait_connected(10)
        first = await alice.send(bob.name, "first")
        assert (await next_message(inbox)).id == first.id

        # The token expires at the service and the service drops the socket: the reconnect's
        # token is refused, the subscription logs in again and is authorised.
        token_before = await bob.login()
        sdk_stack.clock.advance(3601)
        assert await ds.drop_sockets(bob.address) == 1
        second = await alice.send(bob.name, "sent while reconnecting")
        received = await next_message(inbox)
        assert received.id == second.id  # the catch-up fetch brings it (the first is yielded once)
        await inbox.wait_connected(10)
        assert inbox.connections == 2
        assert await bob.login() != token_before  # the subscription's new login, now shared

        third = await alice.send(bob.name, "pushed after the reconnect")
        assert (await next_message(inbox)).id == third.id


async def test_subscription_catches_up_with_messages_queued_before_it_started(sdk_stack: SdkStack) -> None:
    alice, bob = sdk_stack.client(), sdk_stack.client()
    await alice.setup()
    await bob.setup()
    early = [await alice.send(bob.name, f"early {i}") for i in range(3)]
    async with bob.subscribe() as inbox:
        received = [await next_message(inbox) for _ in early]
    assert [m.id for m in received] == [m.id for m in early]
    assert [m.text for m in received] == ["early 0", "early 1", "early 2"]


async def test_send_falls_back_to_the_second_delivery_service_when_the_first_is_down(sdk_stack: SdkStack) -> None:
    both = DS_NAMES
    alice = sdk_stack.client()
    bob = sdk_stack.client(config=sdk_stack.config(delivery_services=both))
    await alice.setup()
    await bob.setup()  # profile lists both; an account at each
    assert {(await bob.account(name)).delivery_service for name in both} == set(both)

    first_ds, second_ds = (sdk_stack.services[name] for name in both)
    assert first_ds.signing_public_key != second_ds.signing_public_key
    await first_ds.stop()

    sent = await alice.send(bob.name, "via the second service")
    assert sent.delivery_service == both[1]
    [attempt] = sent.failed_attempts
    assert attempt.delivery_service == both[0]
    assert isinstance(attempt.error, ConnectionError)

    [received] = (await bob.fetch(both[1])).messages
    assert (received.id, received.text, received.delivery_service) == (sent.id, "via the second service", both[1])
    # Postmarked by the second service, with its own key.
    assert verify_postmark(received.postmark, received.envelope.message, second_ds.signing_public_key)
    assert not verify_postmark(received.postmark, received.envelope.message, first_ds.signing_public_key)


async def test_send_fails_with_every_attempt_when_no_delivery_service_takes_it(sdk_stack: SdkStack) -> None:
    alice = sdk_stack.client()
    bob = sdk_stack.client(config=sdk_stack.config(delivery_services=DS_NAMES))
    await alice.setup()
    await bob.publish_profile()  # listed at both services, but no account at either
    with pytest.raises(DeliveryError) as caught:
        await alice.send(bob.name, "nobody takes this")
    error = caught.value
    assert [a.delivery_service for a in error.attempts] == list(DS_NAMES)
    assert [a.error.code for a in error.attempts] == ["receiver_without_account"] * 2
    assert (error.status, error.code) == (404, "receiver_without_account")
    assert isinstance(error.__cause__, ApiError) and error.__cause__.rpc_code == -32014


async def test_deleted_account_drops_its_messages_and_refuses_new_ones(sdk_stack: SdkStack) -> None:
    alice, bob = sdk_stack.client(), sdk_stack.client()
    await alice.setup()
    await bob.setup()
    await alice.send(bob.name, "never read")
    await bob.login()

    sdk_stack.clock.advance(1)  # a deletion must be newer than the creation
    assert await bob.delete_account() == 1

    with pytest.raises(DeliveryError) as refused:
        await alice.send(bob.name, "after deletion")
    assert refused.value.code == "receiver_without_account"
    with pytest.raises(ApiError) as gone:
        await bob.fetch()
    assert (gone.value.status, gone.value.code) == (404, "no_account")
    assert gone.value.body["error"] == "no_account" and isinstance(gone.value.body["message"], str)

    # Re-created with a newer signed message, it starts empty.
    sdk_stack.clock.advance(1)
    await bob.create_account()
    assert (await bob.fetch()).messages == ()


async def test_postmark_not_signed_by_the_key_in_ens_is_rejected_and_can_be_acked(sdk_stack: SdkStack) -> None:
    from ensign.errors import SignatureError
    from ensign.protocol.keys import random_signing_key_pair
    from ensign.protocol.models import DeliveryServiceProfile
    from ensign.protocol.profile import DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri

    bob_key = new_private_key()
    alice, bob = sdk_stack.client(), sdk_stack.client(bob_key)
    await alice.setup()
    await bob.setup()
    sent = await alice.send(bob.name, "postmarked by the real key")

    # ENS now names another signing key for the service than the one that signed the postmark.
    ds = sdk_stack.services[DS_NAMES[0]]
    forged = DeliveryServiceProfile(
        public_encryption_key=ds.settings.keys.encryption_public_key,
        public_signing_key=random_signing_key_pair().public_key,
        url=ds.settings.url,
    )
    await sdk_stack.stack.chain.set_text(DS_NAMES[0], DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri(forged))
    fresh_bob = sdk_stack.client(bob_key)  # a new client: no cached service profile

    page = await fresh_bob.fetch()
    assert page.messages == ()
    [rejected] = page.rejected
    assert (rejected.id, rejected.delivery_service) == (sent.id, DS_NAMES[0])
    assert isinstance(rejected.error, SignatureError) and "postmark" in rejected.error.message
    async with fresh_bob.subscribe() as inbox:
        await inbox.wait_connected(10)
        for _ in range(50):  # the catch-up fetch brings it; it is kept aside, not yielded
            if inbox.rejected:
                break
            await asyncio.sleep(0.1)
        assert [r.id for r in inbox.rejected] == [sent.id]
    assert await fresh_bob.ack(rejected) == 1
    assert (await fresh_bob.fetch()).rejected == ()
