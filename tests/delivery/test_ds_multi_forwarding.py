"""A multi-recipient envelope forwarded between two delivery services (``specs/delivery.md`` §4.6).

The SDK stack of tests/client/sdk_stack.py (``ds.ensign.eth`` and ``ds2.ensign.eth`` published in
ENS). Alice sends one ``ensign-multi-v1`` envelope, encrypted to the first service, over JSON-RPC
to it; Bob and Carol have accounts there, Dave's profile lists both services and his account is on
the second only, so the first hands the envelope on for him alone.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ensign.client import Client
from ensign.protocol.forwarding import build_forwarding, build_multi_forwarding
from ensign.protocol.keys import random_signing_key_pair
from ensign.protocol.multi import MultiCopy, MultiEnvelope, build_multi_envelope, create_multi_message
from ensign.protocol.postmark import verify_postmark
from tests.client.sdk_stack import DS_NAMES, DeliveryService, SdkStack, sdk_stack  # noqa: F401
from tests.delivery.test_ds_forwarding import _counter, _ds_keys, _rpc
from tests.test_openapi import SPEC_PATH, Schemas
from tests.delivery.test_ds_forwarding import _envelope as single_envelope

FIRST, SECOND = DS_NAMES
SCHEMAS = Schemas(yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8")))


async def _people(sdk_stack: SdkStack, dave_services: tuple[str, ...] = DS_NAMES) -> tuple[Client, Client, Client, Client]:
    alice, bob, carol = sdk_stack.client(), sdk_stack.client(), sdk_stack.client()
    dave = sdk_stack.client(config=sdk_stack.config(delivery_services=dave_services))
    for client in (alice, bob, carol):
        await client.setup()
    await dave.publish_profile(dave_services)
    await dave.create_account(SECOND)
    return alice, bob, carol, dave


async def _envelope(alice: Client, receivers: list[Client], ds: DeliveryService, text: str) -> MultiEnvelope:
    """Alice's one envelope for ``receivers``, its receiver list encrypted to ``ds``."""
    keys = await alice.keys()
    names = [r.name for r in receivers]
    message = create_multi_message(names, alice.name, text, keys.signing.secret_key, timestamp=1_700_000_000_000)
    wrapped = {r.name: (await r.keys()).encryption.public_key for r in receivers}
    return build_multi_envelope(message, keys.signing.secret_key, wrapped, ds.settings.keys.encryption_public_key)


async def _submit(sdk_stack: SdkStack, envelope: MultiEnvelope) -> list[dict[str, Any]]:
    status, answer = await _rpc(sdk_stack, sdk_stack.services[FIRST], "ensign_submitMultiMessage", [json.dumps(envelope.to_json())])
    assert status == 200, answer
    assert answer["result"]["id"] == envelope.encrypted_message_hash
    assert SCHEMAS.errors("/components/schemas/SubmitMultiMessageResult", answer["result"]) == []
    recipients: list[dict[str, Any]] = answer["result"]["recipients"]
    return recipients


def _note(
    sdk_stack: SdkStack, envelope: MultiEnvelope, recipients: list[str], *, signing: str | None = None, path: tuple[str, ...] = (FIRST,)
) -> dict[str, Any]:
    """The note the first service would sign for the second (or one signed with ``signing``)."""
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]
    return build_multi_forwarding(
        envelope,
        _ds_keys(first),
        signing or first.settings.keys.signing_private_key,
        path=path,
        to=SECOND,
        to_public_encryption_key=second.settings.keys.encryption_public_key,
        recipients=recipients,
    ).to_json()


async def _forward(sdk_stack: SdkStack, envelope: MultiEnvelope, note: dict[str, Any]) -> tuple[int, Any]:
    return await _rpc(sdk_stack, sdk_stack.services[SECOND], "ensign_forwardMultiMessage", [envelope.to_json(), note])


async def test_one_envelope_to_three_recipients_on_two_services_each_decrypts_it(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = await _people(sdk_stack)
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]
    envelope = await _envelope(alice, [bob, carol, dave], first, "hello across services")

    outcomes = await _submit(sdk_stack, envelope)

    assert outcomes == [
        {"to": bob.name, "status": "stored"},
        {"to": carol.name, "status": "stored"},
        {"to": dave.name, "status": "forwarded", "deliveryService": SECOND},
    ]
    for receiver, service in ((bob, first), (carol, first), (dave, second)):
        [received] = (await receiver.fetch(service.name)).messages
        assert (received.id, received.text, received.sender, received.receiver) == (
            envelope.encrypted_message_hash, "hello across services", alice.name, receiver.name,
        )
        assert isinstance(received.envelope, MultiCopy)
        assert received.recipients == (bob.name, carol.name, dave.name)
        # Postmarked by the service that stored it.
        assert verify_postmark(received.postmark, envelope.message, service.signing_public_key)
    assert await _counter(sdk_stack, first, 'ensign_ds_forwards_total{outcome="forwarded"}') == 1
    assert await _counter(sdk_stack, first, "ensign_ds_messages_total") == 2
    assert await _counter(sdk_stack, second, "ensign_ds_forwarded_in_total") == 1

    # Submitted again: duplicates at both services, still one message each.
    again = await _submit(sdk_stack, envelope)
    assert [o["status"] for o in again] == ["duplicate", "duplicate", "forwarded"]
    for receiver, service in ((bob, first), (dave, second)):
        assert len((await receiver.fetch(service.name)).messages) == 1


async def test_the_next_service_delivers_only_the_receivers_the_note_names(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = await _people(sdk_stack)
    await bob.create_account(SECOND)  # Bob could be stored at the second service too, but is not named
    envelope = await _envelope(alice, [bob, carol, dave], sdk_stack.services[FIRST], "just dave")

    note = _note(sdk_stack, envelope, [dave.name])
    call = {"jsonrpc": "2.0", "id": 7, "method": "ensign_forwardMultiMessage", "params": [envelope.to_json(), note]}
    assert SCHEMAS.errors("/components/schemas/RpcCall", call) == []
    status, answer = await _forward(sdk_stack, envelope, note)

    assert status == 200, answer
    assert answer["result"]["recipients"] == [{"to": dave.name, "status": "stored"}]
    assert [m.text for m in (await dave.fetch(SECOND)).messages] == ["just dave"]
    assert (await bob.fetch(SECOND)).messages == ()


async def test_a_forged_or_changed_note_is_refused(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = await _people(sdk_stack)
    envelope = await _envelope(alice, [bob, carol, dave], sdk_stack.services[FIRST], "forged")

    forged = _note(sdk_stack, envelope, [dave.name], signing=random_signing_key_pair().secret_key)
    changed = {**_note(sdk_stack, envelope, [dave.name]), "recipients": [carol.name, dave.name]}
    unsigned = {k: v for k, v in _note(sdk_stack, envelope, [dave.name]).items() if k != "signature"}
    single = {k: v for k, v in _note(sdk_stack, envelope, [dave.name]).items() if k != "recipients"}
    loop = _note(sdk_stack, envelope, [dave.name], path=(SECOND,))
    for note, expected in (
        (forged, "not signed by the forwarding service"),
        (changed, "not signed by the forwarding service"),
        (unsigned, "missing field(s): signature"),
        (single, "must name its recipients"),
        (loop, "a loop"),
    ):
        status, answer = await _forward(sdk_stack, envelope, note)
        assert status == 403, answer
        error = answer["error"]
        assert (error["code"], error["data"]["error"]) == (-32030, "forwarding_refused")
        assert expected in error["message"]
    assert (await dave.fetch(SECOND)).messages == ()


async def test_a_note_naming_a_receiver_not_in_the_list_is_refused(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = await _people(sdk_stack)
    envelope = await _envelope(alice, [bob, dave], sdk_stack.services[FIRST], "not for carol")

    status, answer = await _forward(sdk_stack, envelope, _note(sdk_stack, envelope, [dave.name, carol.name]))

    assert status == 403
    assert answer["error"]["data"]["error"] == "forwarding_refused"
    assert f"does not name {carol.name}" in answer["error"]["message"]
    assert (await dave.fetch(SECOND)).messages == ()


async def test_a_receiver_not_listing_the_forwarder_before_the_next_service_is_refused(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = await _people(sdk_stack)
    erin = sdk_stack.client(config=sdk_stack.config(delivery_services=(SECOND, FIRST)))
    await erin.publish_profile((SECOND, FIRST))  # the second service first: the first may not forward to it
    await erin.create_account(SECOND)
    envelope = await _envelope(alice, [dave, erin], sdk_stack.services[FIRST], "order matters")

    status, answer = await _forward(sdk_stack, envelope, _note(sdk_stack, envelope, [erin.name, dave.name]))

    assert status == 200, answer
    [for_erin, for_dave] = answer["result"]["recipients"]
    assert (for_erin["status"], for_erin["error"]["code"]) == ("refused", "forwarding_refused")
    assert f"{FIRST} is not listed before this delivery service" in for_erin["error"]["message"]
    assert for_dave == {"to": dave.name, "status": "stored"}
    assert (await erin.fetch(SECOND)).messages == ()

    # The first service does not forward her either: it is not on her path after itself.
    outcomes = await _submit(sdk_stack, envelope)
    assert (outcomes[1]["status"], outcomes[1]["error"]["code"]) == ("refused", "receiver_elsewhere")


async def test_a_next_service_that_is_down_refuses_only_its_receivers(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = await _people(sdk_stack)
    first = sdk_stack.services[FIRST]
    await sdk_stack.services[SECOND].stop()
    envelope = await _envelope(alice, [bob, carol, dave], first, "second is down")

    outcomes = await _submit(sdk_stack, envelope)

    assert outcomes[:2] == [{"to": bob.name, "status": "stored"}, {"to": carol.name, "status": "stored"}]
    assert (outcomes[2]["status"], outcomes[2]["error"]["code"]) == ("refused", "receiver_without_account")
    assert f"{SECOND}: unreachable" in outcomes[2]["error"]["message"]
    assert outcomes[2]["error"]["details"] == {
        "forwarding": [{"deliveryService": SECOND, "outcome": "unreachable", "detail": "cannot connect"}]
    }
    for receiver in (bob, carol):
        assert [m.text for m in (await receiver.fetch()).messages] == ["second is down"]
    assert await _counter(sdk_stack, first, 'ensign_ds_forwards_total{outcome="unreachable"}') == 1


async def test_the_single_envelope_method_refuses_a_note_naming_recipients(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = await _people(sdk_stack)
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]
    envelope = await single_envelope(alice, dave, first, "wrong door")
    note = build_forwarding(
        envelope, _ds_keys(first), first.settings.keys.signing_private_key, path=(FIRST,), to=SECOND,
        to_public_encryption_key=second.settings.keys.encryption_public_key,
    ).to_json()
    status, answer = await _rpc(sdk_stack, second, "ensign_forwardMessage", [envelope.to_json(), {**note, "recipients": [dave.name]}])
    assert status == 403, answer
    assert answer["error"]["data"]["error"] == "forwarding_refused"
    assert "ensign_forwardMultiMessage" in answer["error"]["message"]
