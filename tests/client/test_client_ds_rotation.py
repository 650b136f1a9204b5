"""A delivery service rotates its keys while senders keep submitting (issue 14, point 6): no
submission fails, every message is read with a verified postmark, and after the window the old
key is refused. The service runs as processes behind one front address, replaced one at a time as
README "Rotating the delivery service's keys" says:

1. the processes with the current set (K1);
2. processes with K1 and the next set K2 (``next_keys``), and ``AT_REST_KEY`` pinned to the key the
   first processes derived from K1 (``ensign keys at-rest``), so what they sealed stays readable
   (the settings refuse a next set without it): they read delivery information encrypted to either; ``eth.ensign.deliveryServiceKeys`` lists K2, so postmarks by K2 will verify;
3. the ENS profile names K2 (and the keys record K1); processes with K2, next K1: postmarks signed
   with K2, delivery information for K1 (senders' cached profiles) still read;
4. after the window: processes with K2 alone; delivery information for K1 is refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from dataclasses import replace

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from delivery.app import create_app as create_delivery
from delivery.at_rest import derived_master
from delivery.ports import Web3Chain
from ensign.client import Client, DeliveryError
from ensign.config import DeliveryKeys, DeliveryLimits, DeliverySettings
from ensign.protocol.ds_keys import delivery_service_keys_record
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.models import DeliveryServiceProfile
from ensign.protocol.profile import profile_json_data_uri
from ensign.protocol.records import DELIVERY_SERVICE_KEYS_RECORD_NAME, DELIVERY_SERVICE_RECORD_NAME
from tests.client.sdk_stack import SdkStack
from tests.delivery.ds_helpers import make_settings

DS_NAME = "rotating.ensign.eth"
#: Successful submissions each phase must see before the next step.
PER_PHASE = 6


def _key_set() -> DeliveryKeys:
    signing, encryption = random_signing_key_pair(), random_encryption_key_pair()
    return DeliveryKeys(signing.public_key, signing.secret_key, encryption.public_key, encryption.secret_key)


class FrontProxy:
    """The load balancer in front of the service's processes: each request goes to the next live
    upstream in turn (per request, not per connection, so a process leaves the rotation at once)."""

    def __init__(self) -> None:
        self.upstreams: list[str] = []
        self._turn = itertools.count()
        self._http: aiohttp.ClientSession | None = None
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.server = TestServer(app, host="127.0.0.1")

    async def start(self) -> str:
        # A connection per request: none stays pooled to a process that is being stopped.
        self._http = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(force_close=True))
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        upstream = self.upstreams[next(self._turn) % len(self.upstreams)]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._http.request(request.method, upstream + request.path_qs, data=body, headers=headers) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
            return web.Response(status=answer.status, body=body, headers=kept)

    async def close(self) -> None:
        await self.server.close()
        if self._http is not None:
            await self._http.close()


async def test_a_delivery_service_key_rotation_fails_no_submission(
    sdk_stack: SdkStack, redis: aioredis.Redis, redis_prefix: str
) -> None:
    stack = sdk_stack.stack
    proxy = FrontProxy()
    front = await proxy.start()
    base = make_settings(
        f"{redis_prefix}rot:",
        url=front,
        name=DS_NAME,
        limits=DeliveryLimits(sender=None, pair=None, address=None, login=None),
    )
    old, new = base.keys, _key_set()
    processes: list[TestServer] = []

    # What `ensign keys at-rest` prints for K1: the processes of step 1 run without AT_REST_KEY.
    pinned = base64.b64encode(derived_master(old)).decode()

    async def start_process(keys: DeliveryKeys, next_keys: DeliveryKeys | None) -> TestServer:
        at_rest_key = None if keys is old and next_keys is None else pinned
        settings: DeliverySettings = replace(base, keys=keys, next_keys=next_keys, at_rest_key=at_rest_key)
        app = create_delivery(
            settings,
            redis=redis,
            directory=stack.lookup,
            chain=Web3Chain(stack.chain.w3),
            clock=sdk_stack.clock,
            sweep_interval=None,
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        processes.append(server)
        return server

    async def replace_processes(keys: DeliveryKeys, next_keys: DeliveryKeys | None) -> None:
        """Start two new processes, send every new request to them, then stop the old ones."""
        started = [await start_process(keys, next_keys) for _ in range(2)]
        retired = [server for server in processes if server not in started]
        proxy.upstreams[:] = [str(server.make_url("")).rstrip("/") for server in started]
        await asyncio.sleep(0.1)  # the balancer's deregistration delay: requests under way arrive
        for server in retired:
            await server.close()  # lets requests in flight finish
            processes.remove(server)

    async def publish(keys: DeliveryKeys, others: list[DeliveryKeys]) -> None:
        profile = DeliveryServiceProfile(
            public_encryption_key=keys.encryption_public_key, public_signing_key=keys.signing_public_key, url=front
        )
        await stack.chain.set_text(DS_NAME, DELIVERY_SERVICE_RECORD_NAME, profile_json_data_uri(profile))
        record = delivery_service_keys_record([other.signing_public_key for other in others])
        await stack.chain.set_text(DS_NAME, DELIVERY_SERVICE_KEYS_RECORD_NAME, record)

    try:
        await replace_processes(old, None)
        await publish(old, [])
        config = sdk_stack.config(delivery_services=(DS_NAME,))
        bob = sdk_stack.client(config=config)
        await bob.setup()
        # Senders that read the service's profile before the rotation and keep it cached, and
        # (below) senders that read it after the ENS update.
        senders: list[Client] = [sdk_stack.client(config=config) for _ in range(2)]
        for sender in senders:
            await sender.setup()

        sent: list[str] = []
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def keep_sending(sender: Client, tag: str) -> None:
            for number in itertools.count():
                if stop.is_set():
                    return
                text = f"{tag}-{number}"
                try:
                    await sender.send(bob.name, text)
                except Exception as exc:  # every failure is a finding
                    failures.append(exc)
                else:
                    sent.append(text)

        async def phase() -> None:
            target = len(sent) + PER_PHASE
            while len(sent) < target and not failures:
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(keep_sending(sender, f"s{i}")) for i, sender in enumerate(senders)]
        try:
            await phase()  # 1. the current set only
            await replace_processes(old, new)  # 2. both sets; K2 listed for postmarks
            await publish(old, [new])
            await phase()
            await publish(new, [old])  # 3. ENS names K2; processes sign with K2
            await replace_processes(new, old)
            late = sdk_stack.client(config=config)  # reads the new profile
            await late.setup()
            tasks.append(asyncio.create_task(keep_sending(late, "late")))
            await phase()
            await phase()
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert failures == []
        print(f"rotation: {len(sent)} submissions, none failed")
        assert len(sent) >= 4 * PER_PHASE
        assert any(text.startswith("late") for text in sent)

        # Bob reads every message, those the first processes sealed too; postmarks by K1 and K2
        # both verify.
        received: list[str] = []
        async for page in bob.pages():
            assert [str(r.error) for r in page.rejected] == []
            received += [message.text for message in page.messages]
            await bob.ack(*page.messages)
        assert sorted(received) == sorted(sent)

        # 4. The window ends: processes with K2 alone; a sender still holding K1 is refused.
        await replace_processes(new, None)
        await publish(new, [])
        with pytest.raises(DeliveryError) as refused:
            await senders[0].send(bob.name, "to the old key")
        assert refused.value.code == "delivery_information_unreadable"
    finally:
        await proxy.close()
        for server in processes:
            with contextlib.suppress(Exception):
                await server.close()



async def test_a_forwarding_note_signed_with_the_forwarders_other_key_is_taken_during_its_rotation(
    sdk_stack: SdkStack,
) -> None:
    from ensign.protocol.forwarding import build_forwarding
    from tests.delivery.test_ds_forwarding import FIRST, SECOND, _ds_keys, _envelope, _rpc, _users

    alice, bob = await _users(sdk_stack)
    first, second = sdk_stack.services[FIRST], sdk_stack.services[SECOND]
    envelope = await _envelope(alice, bob, first, "forwarded while the first service rotates")
    other = random_signing_key_pair()  # the first service's other key (next or previous)
    note = build_forwarding(
        envelope,
        _ds_keys(first),
        other.secret_key,
        path=(FIRST,),
        to=SECOND,
        to_public_encryption_key=second.settings.keys.encryption_public_key,
    ).to_json()

    async def forward() -> tuple[int, object]:
        status, answer = await _rpc(sdk_stack, second, "ensign_forwardMessage", [envelope.to_json(), note])
        return status, answer.get("result", answer.get("error", {}).get("data", {}).get("error"))

    assert await forward() == (403, "forwarding_refused")  # not a key of the first service
    await sdk_stack.stack.chain.set_text(
        FIRST, DELIVERY_SERVICE_KEYS_RECORD_NAME, delivery_service_keys_record([other.public_key])
    )
    sdk_stack.stack.lookup.forget(FIRST)
    assert await forward() == (200, "OK")
    assert [m.text for m in (await bob.fetch(SECOND)).messages] == ["forwarded while the first service rotates"]
