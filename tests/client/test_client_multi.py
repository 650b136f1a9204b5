"""``client.send([names], text)`` on the real stack: one envelope per delivery service, each
receiver fetches, verifies and decrypts its copy; and ``ensign send a,b`` on the command line."""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from ensign.client import ApiError, MultiSentMessage
from ensign.protocol.models import DeliveryServiceProfile
from ensign.protocol.multi import MultiCopy, recipients_of
from ensign.protocol.profile import DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri
from ensign.protocol.postmark import verify_postmark
from tests.client.sdk_stack import DS_NAMES, SdkStack, new_private_key
from tests.client.test_cli_client import run_cli


async def test_one_envelope_to_three_receivers_each_decrypts_it(sdk_stack: SdkStack) -> None:
    alice, bob, carol, dave = (sdk_stack.client() for _ in range(4))
    for client in (alice, bob, carol, dave):
        await client.setup()
    names = [bob.name, carol.name, dave.name]

    sent = await alice.send(names, "hello, all three")

    assert isinstance(sent, MultiSentMessage)
    assert [(r.receiver, r.status, r.delivery_service) for r in sent.recipients] == [(n, "stored", DS_NAMES[0]) for n in names]
    assert len({r.id for r in sent.recipients}) == 1 and sent.refused == ()
    ds = sdk_stack.services[DS_NAMES[0]]
    for receiver in (bob, carol, dave):
        page = await receiver.fetch()
        assert page.rejected == ()
        [message] = page.messages
        assert (message.id, message.text, message.sender, message.receiver) == (
            sent.recipients[0].id, "hello, all three", alice.name, receiver.name,
        )
        assert isinstance(message.envelope, MultiCopy)
        assert message.recipients == recipients_of(message.message) == tuple(names)
        assert verify_postmark(message.postmark, message.envelope.message, ds.signing_public_key)
        assert await receiver.ack(message) == 1
        assert (await receiver.fetch()).messages == ()


async def test_receivers_on_two_services_and_one_without_account(sdk_stack: SdkStack) -> None:
    alice, bob, erin = sdk_stack.client(), sdk_stack.client(), sdk_stack.client()
    carol = sdk_stack.client(config=sdk_stack.config(delivery_services=(DS_NAMES[1],)))
    for client in (alice, bob, carol):
        await client.setup()
    await erin.publish_profile()  # lists the first service, but no account there

    sent = await alice.send([bob.name, carol.name, erin.name], "across services")

    assert [(r.status, r.delivery_service) for r in sent.recipients] == [
        ("stored", DS_NAMES[0]), ("stored", DS_NAMES[1]), ("refused", DS_NAMES[0]),
    ]
    error = sent.recipients[2].error
    assert isinstance(error, ApiError) and error.code == "receiver_without_account"
    assert sent.refused == (sent.recipients[2],)
    # One envelope per service, each encrypted and postmarked on its own; each copy opens.
    [at_first] = (await bob.fetch()).messages
    [at_second] = (await carol.fetch(DS_NAMES[1])).messages
    assert (at_first.text, at_second.text) == ("across services", "across services")
    assert at_second.delivery_service == DS_NAMES[1]


async def test_a_receiver_at_the_next_service_of_its_profile_is_forwarded_by_the_first(sdk_stack: SdkStack) -> None:
    alice, bob = sdk_stack.client(), sdk_stack.client(config=sdk_stack.config(delivery_services=DS_NAMES))
    carol = sdk_stack.client()
    for client in (alice, carol):
        await client.setup()
    await bob.publish_profile(DS_NAMES)
    await bob.create_account(DS_NAMES[1])  # listed at both, an account only at the second

    sent = await alice.send([bob.name, carol.name], "second service for bob")

    # The first service hands the envelope on to the second for Bob: the client makes no second attempt.
    bob_outcome = sent.recipients[0]
    assert (bob_outcome.status, bob_outcome.delivery_service, bob_outcome.failed_attempts) == ("forwarded", DS_NAMES[0], ())
    assert bob_outcome.delivered and sent.refused == ()
    [received] = (await bob.fetch(DS_NAMES[1])).messages
    assert received.text == "second service for bob"


async def test_a_pushed_multi_recipient_message_is_opened(sdk_stack: SdkStack) -> None:
    alice, bob, carol = sdk_stack.client(), sdk_stack.client(), sdk_stack.client()
    for client in (alice, bob, carol):
        await client.setup()
    async with bob.subscribe() as inbox:
        await inbox.wait_connected(10)
        sent = await alice.send([carol.name, bob.name], "pushed to both")
        pushed = await asyncio.wait_for(inbox.__anext__(), 10)
    assert (pushed.id, pushed.text, pushed.receiver) == (sent.recipients[1].id, "pushed to both", bob.name)


async def test_send_command_to_several_names(sdk_stack: SdkStack) -> None:
    alice_key = new_private_key()
    carol_key = new_private_key()
    bob, carol = sdk_stack.client(), sdk_stack.client(carol_key)
    await bob.setup()
    await carol.setup()

    code, out, err = await run_cli(sdk_stack, "send", "--setup", f"{bob.name},{carol.name}", "hi both", stdin=alice_key + "\n")
    assert code == 0, err
    result = json.loads(out)
    assert result["to"] == [bob.name, carol.name]
    assert [(r["to"], r["status"]) for r in result["recipients"]] == [(bob.name, "stored"), (carol.name, "stored")]

    nobody = sdk_stack.client()
    await nobody.publish_profile()
    code, out, err = await run_cli(sdk_stack, "send", "--to", bob.name, "--to", nobody.name, "again", stdin=alice_key + "\n")
    assert code == 1, err
    statuses = [(r["status"], r.get("error")) for r in json.loads(out)["recipients"]]
    assert statuses == [("stored", None), ("refused", "receiver_without_account")]
    assert [m.text for m in (await bob.fetch()).messages] == ["hi both", "again"]

    code, out, err = await run_cli(sdk_stack, "inbox", stdin=carol_key + "\n")
    assert code == 0, err
    [line] = [json.loads(line) for line in out.splitlines()]
    assert (line["text"], line["to"], line["recipients"]) == ("hi both", carol.name, [bob.name, carol.name])


async def test_a_service_without_multi_recipient_envelopes_gets_one_dm3_envelope_per_receiver(sdk_stack: SdkStack) -> None:
    """The second service's ENS record points at a stand-in that answers ``method_not_found`` to
    ``ensign_submitMultiMessage``, as a dm3 service does, and passes everything else on."""
    real = sdk_stack.services[DS_NAMES[1]]
    seen: list[str] = []

    async def rpc(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body["method"])
        if body["method"] == "ensign_submitMultiMessage":
            error = {"code": -32601, "message": "unknown method", "data": {"error": "method_not_found"}}
            return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "error": error}, status=405)
        async with ClientSession() as http, http.post(real.settings.url + "/rpc", json=body) as answer:
            return web.json_response(await answer.json(), status=answer.status)

    app = web.Application()
    app.router.add_post("/rpc", rpc)
    stand_in = TestServer(app, host="127.0.0.1")
    await stand_in.start_server()
    try:
        bob, carol = (sdk_stack.client(config=sdk_stack.config(delivery_services=(DS_NAMES[1],))) for _ in range(2))
        for client in (bob, carol):
            await client.setup()
        profile = DeliveryServiceProfile(
            public_encryption_key=real.settings.keys.encryption_public_key,
            public_signing_key=real.settings.keys.signing_public_key,
            url=str(stand_in.make_url("")).rstrip("/"),
        )
        await sdk_stack.stack.chain.set_text(DS_NAMES[1], DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri(profile))
        alice = sdk_stack.client()
        await alice.publish_profile()

        sent = await alice.send([bob.name, carol.name], "one each")

        assert [(r.status, r.delivery_service) for r in sent.recipients] == [("stored", DS_NAMES[1])] * 2
        assert seen == ["ensign_submitMultiMessage", "dm3_submitMessage", "dm3_submitMessage"]
        for receiver in (bob, carol):  # bob and carol cached the real service's URL at set-up
            [message] = (await receiver.fetch(DS_NAMES[1])).messages
            assert (message.text, message.receiver, message.id) == ("one each", receiver.name, next(
                r.id for r in sent.recipients if r.receiver == receiver.name))
            assert message.message.metadata.to == receiver.name  # an ordinary dm3 message, for it alone
    finally:
        await stand_in.close()
