"""Two SDK users on the real stack: keys, profiles, accounts, sessions, send, push, poll, ack."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ensign.client import ApiError, DeliveryError, ReceivedMessage
from ensign.protocol.keys import profile_keys_from_wallet
from ensign.protocol.postmark import postmark_message_hash, verify_postmark
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key


def unique_alias(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:8]}.user.ensign.eth"


async def next_message(inbox, timeout: float = 10.0) -> ReceivedMessage:
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
