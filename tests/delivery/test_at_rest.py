"""What Redis keeps of a message's sender: nothing readable (delivery.at_rest), and what the logs
name at INFO: nobody. Records stored in clear before sealing are still served and acknowledged."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.delivery.ds_helpers import (  # noqa: F401  (fixtures)
    START,
    bearer,
    chain,
    clock,
    directory,
    ds_client,
    ds_settings,
    envelope,
    login,
    rpc_submit,
    signup,
    users,
)

from delivery.at_rest import AtRest
from delivery.intake import stored_envelope
from delivery.keys import rate_key, socket_key
from delivery.limits import RateLimiter, SocketSlots
from delivery.queue import MessageQueue, scoped_id
from ensign.config import RateLimit
from ensign.errors import DecryptionError
from ensign.protocol.canonical import stringify_bytes
from ensign.protocol.encoding import checksum_address


async def everything_under(redis: aioredis.Redis, prefix: str) -> bytes:
    """Every key under ``prefix`` and everything it holds (names, fields, members, values), as
    one byte string to search."""
    parts: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        parts.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            parts.append(await redis.get(key))
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                parts += [field, value]
        elif kind == "zset":
            parts += await redis.zrange(key, 0, -1)
        elif kind == "set":
            parts += list(await redis.smembers(key))
        elif kind == "list":
            parts += await redis.lrange(key, 0, -1)
        elif kind == "stream":
            for _, entry in await redis.xrange(key):
                for field, value in entry.items():
                    parts += [field, value]
        else:
            raise AssertionError(f"{key!r} has type {kind}, which this dump does not read")
    return b"\n".join(parts)


def forms_of(user: Any, *names: str) -> list[bytes]:
    """Every form of a user's identity to look for: names, the address in each spelling, its
    bytes, and the public signing key (a signature checks against it)."""
    raw = bytes.fromhex(user.address[2:])
    texts = [
        *names,
        user.address.lower(),
        checksum_address(user.address),
        user.address[2:].lower(),
        user.address[2:].upper(),
        base64.b64encode(raw).decode(),
        user.keys.signing.public_key,
    ]
    return [text.encode() for text in texts] + [raw]


@pytest.fixture
async def bob_session(ds_client, users) -> str:
    # Only the receiver has an account here: the sender's own account keys would name it.
    await signup(ds_client, users[1])
    return await login(ds_client, users[1])


async def test_redis_holds_no_plaintext_sender_after_delivery(
    ds_client, users, ds_settings, bob_session, redis, redis_prefix, caplog
) -> None:
    alice, bob = users[0], users[1]
    caplog.set_level(logging.INFO)
    sent = [
        envelope(alice, bob, ds_settings, "one", form="npm", sender_name="alice.user.ensign.eth"),
        envelope(alice, bob, ds_settings, "two", form="source"),
    ]
    for env in sent:
        resp = await ds_client.post("/rpc", json={**rpc_submit(env), "id": 1})
        assert resp.status == 200, await resp.text()
    # A resubmission is still recognised as the same sender's message (tags compare equal).
    resp = await ds_client.post("/rpc", json={**rpc_submit(sent[0]), "id": 2})
    assert resp.status == 200

    resp = await ds_client.get(f"/delivery/messages/incoming/{bob.name}/", headers=bearer(bob_session))
    served = await resp.json()
    # dm3 clients read what they always read: the decrypted delivery information, the envelope.
    assert [m["metadata"]["deliveryInformation"]["from"] for m in served] == ["alice.user.ensign.eth", alice.name]
    assert [m["message"] for m in served] == [env["message"] for env in sent]
    assert [m["metadata"]["signature"] for m in served] == [env["metadata"]["signature"] for env in sent]

    stored = await everything_under(redis, redis_prefix)
    assert sent[0]["metadata"]["encryptedMessageHash"].encode() in stored  # the dump reads the queue
    assert f"{redis_prefix}rate:pair:".encode() in stored  # and the rate buckets
    for needle in forms_of(alice, alice.name, "alice.user.ensign.eth"):
        assert needle not in stored, needle
    for env in sent:
        assert env["metadata"]["signature"].encode() not in stored

    # Acknowledged: the ack memory scopes by the sender's tag, not the address.
    ack = {"acknowledgements": [{"contactAddress": alice.name, "messageHash": sent[1]["metadata"]["messageHash"]}]}
    resp = await ds_client.post(f"/delivery/messages/{bob.name}/syncAcknowledgements/", json=ack, headers=bearer(bob_session))
    assert (await resp.json()) == {"acknowledged": 1}
    stored = await everything_under(redis, redis_prefix)
    assert f"{redis_prefix}acked:".encode() in stored
    for needle in forms_of(alice, alice.name, "alice.user.ensign.eth"):
        assert needle not in stored, needle
    # The retry of the acknowledged message is still refused as delivered.
    resp = await ds_client.post("/rpc", json={**rpc_submit(sent[1]), "id": 3})
    resp = await ds_client.get(f"/delivery/messages/incoming/{bob.name}/", headers=bearer(bob_session))
    assert len(await resp.json()) == 1

    # INFO lines name neither party, in their text or their fields.
    lines = [json.dumps({k: str(v) for k, v in vars(r).items()}) for r in caplog.records if r.levelno == logging.INFO]
    assert any("account_ref" in line for line in lines)
    for user in (alice, bob):
        for needle in forms_of(user, user.name, "alice.user.ensign.eth", "bob.user.ensign.eth")[:-1]:
            assert not any(needle.decode() in line for line in lines), needle


async def test_records_stored_in_clear_are_still_served_and_acknowledged(
    ds_client, users, ds_settings, bob_session, redis, redis_prefix
) -> None:
    alice, bob = users[0], users[1]
    env = envelope(alice, bob, ds_settings, "from before sealing")
    message_hash = env["metadata"]["encryptedMessageHash"]
    info = {"to": bob.name, "from": alice.name}
    old = stringify_bytes(stored_envelope(env, info, "postmark"))
    # The format before sealing: the envelope in clear, the sender's address in the record head,
    # and a message another sender's id shadowed stored under "<id>:<address>".
    unsealed = MessageQueue(redis, prefix=redis_prefix)
    assert await unsealed.enqueue(bob.address, message_hash, old, now=START, ttl_seconds=600,
                                  sender=alice.address)
    assert await unsealed.enqueue(bob.address, scoped_id(message_hash, alice.address), old, now=START,
                                  ttl_seconds=600, sender=alice.address)

    resp = await ds_client.get(f"/delivery/messages/incoming/{bob.name}/", headers=bearer(bob_session))
    served = await resp.read()
    assert served == b"[" + old + b"," + old + b"]"

    ack = {"acknowledgements": [{"contactAddress": alice.name, "messageHash": message_hash}]}
    resp = await ds_client.post(f"/delivery/messages/{bob.name}/syncAcknowledgements/", json=ack, headers=bearer(bob_session))
    assert (await resp.json()) == {"acknowledged": 2}


async def test_a_record_sealed_with_another_key_is_skipped_not_served(redis, redis_prefix) -> None:
    mine = AtRest(secrets.token_bytes(32))
    before = MessageQueue(redis, prefix=redis_prefix, require_account=False,
                          at_rest=AtRest(secrets.token_bytes(32)))
    after = MessageQueue(redis, prefix=redis_prefix, require_account=False, at_rest=mine)
    await before.enqueue("0xBob", "a", b'{"old":1}', now=100.0, ttl_seconds=60, sender="0xAlice")
    await after.enqueue("0xBob", "b", b'{"new":1}', now=101.0, ttl_seconds=60, sender="0xAlice")
    page = await after.fetch("0xBob", now=102.0)
    assert [(m.id, m.envelope) for m in page.items] == [("b", b'{"new":1}')]
    assert await after.get("0xBob", "a", now=102.0) is None


def test_sealed_records_open_only_with_the_key_and_for_the_account() -> None:
    at_rest = AtRest(bytes(range(32)))
    sealed = at_rest.seal(b'{"m":1}', "0xBob")
    assert b'{"m":1}' not in sealed
    assert at_rest.open(sealed, "0xbob") == b'{"m":1}'  # accounts compare without case
    assert at_rest.seal(b'{"m":1}', "0xBob") != sealed  # a fresh nonce each time
    with pytest.raises(DecryptionError):
        at_rest.open(sealed, "0xCarol")
    with pytest.raises(DecryptionError):
        AtRest(bytes(32)).open(sealed, "0xBob")
    with pytest.raises(DecryptionError):
        at_rest.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), "0xBob")
    assert at_rest.open(b'{"clear":1}', "0xBob") == b'{"clear":1}'


def test_tags_are_keyed_and_ignore_case() -> None:
    one, other = AtRest(bytes(range(32))), AtRest(bytes(32))
    address = "0x52908400098527886E0F7030069857D2E4169EE7"
    assert one.subject(address) == one.subject(address.lower())
    assert one.subject(address) != other.subject(address)
    assert len(one.subject(address)) == 32 and address.lower()[2:] not in one.subject(address)
    assert one.log_ref(address) != one.subject(address)[:12]
    assert len(one.log_ref(address)) == 12
    # A sender's tag differs from queue to queue: two receivers' queues show no common sender.
    assert one.sender_tag(address, "0xBob") == one.sender_tag(address.lower(), "0xbob")
    assert one.sender_tag(address, "0xBob") != one.sender_tag(address, "0xCarol")
    assert one.sender_tag(address, "0xBob") not in {one.subject(address), other.sender_tag(address, "0xBob")}


def test_sealed_length_does_not_tell_the_names_length() -> None:
    at_rest = AtRest(bytes(range(32)))
    short = json.dumps({"to": "bob.eth", "from": "al.eth"}).encode()
    long = json.dumps({"to": "bob.eth", "from": "a-much-longer-sender-name.user.ensign.eth"}).encode()
    assert len(at_rest.seal(short, "0xBob")) == len(at_rest.seal(long, "0xBob"))
    assert at_rest.open(at_rest.seal(long, "0xBob"), "0xBob") == long


async def test_socket_and_rate_keys_name_client_addresses_by_tag(redis, redis_prefix) -> None:
    at_rest = AtRest(secrets.token_bytes(32))
    slots = SocketSlots(redis, prefix=redis_prefix, per_account=2, per_address=2, at_rest=at_rest)
    await slots.acquire("sid", account="0xBob", address="203.0.113.7")
    await RateLimiter(redis, prefix=redis_prefix, at_rest=at_rest).take("address", RateLimit(5, 60), "203.0.113.7")
    stored = await everything_under(redis, redis_prefix)
    assert b"203.0.113.7" not in stored
    assert socket_key(redis_prefix, "address", at_rest.subject("203.0.113.7")).encode() in stored
    assert rate_key(redis_prefix, "address", at_rest.subject("203.0.113.7")).encode() in stored
    await slots.release("sid")
    assert b"sockets:address" not in await everything_under(redis, redis_prefix)


def _nonce(record: bytes) -> bytes:
    return record[1:25]


def test_every_seal_has_its_own_nonce_also_after_a_fork() -> None:
    at_rest = AtRest(secrets.token_bytes(32))
    records = [at_rest.seal(b'{"m": 1}', "0xacc") for _ in range(1000)]
    assert len({_nonce(r) for r in records}) == 1000
    assert all(at_rest.open(r, "0xacc") == b'{"m": 1}' for r in records)
    # A forked worker seals with the same key: its nonces must not repeat its parent's.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next nonces, leave without running anything else
        try:
            os.write(write, b"".join(_nonce(at_rest.seal(b"{}", "0xacc")) for _ in range(100)))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(_nonce(at_rest.seal(b"{}", "0xacc")) for _ in range(100))
    child_nonces = {child[i : i + 24] for i in range(0, len(child), 24)}
    parent_nonces = {parent[i : i + 24] for i in range(0, len(parent), 24)}
    assert len(child_nonces) == 100 and not child_nonces & parent_nonces
    assert not child_nonces & {_nonce(r) for r in records}
