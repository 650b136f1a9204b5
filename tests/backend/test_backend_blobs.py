"""Content-addressed blobs: streamed in chunks, de-duplicated, size- and quota-limited, checked on read."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.backend.backend_helpers import Wallet, now_ms
from tests.backend.storage_helpers import grant, limited_client, login, register

from backend.blobstore import BLOB_CHUNK
from ensign.config import BackendSettings


def sha(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


def url(wallet: Wallet, blob_hash: str) -> str:
    return f"/storage/blobs/{wallet.address_name}/{blob_hash}"


async def chunked(data: bytes, piece: int = 100_000) -> AsyncIterator[bytes]:
    # Sent with Transfer-Encoding: chunked, as a streaming client does.
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def test_a_large_blob_streams_in_and_out_and_is_kept_once(client: Any, alice: Wallet, redis: Any,
                                                                redis_prefix: str) -> None:
    await register(client, alice)
    h = await login(client, alice)
    data = os.urandom(3 * BLOB_CHUNK + 12345)  # four chunks, the last one short
    stored = await client.put(url(alice, sha(data)), data=chunked(data), headers=h)
    assert (await stored.json()) == {"hash": sha(data), "size": len(data), "status": "stored"}
    chunk_keys = {k async for k in redis.scan_iter(match=f"{redis_prefix}*blob:{sha(data)}:*")}  # SCAN may repeat one
    assert len(chunk_keys) == 4

    again = await client.put(url(alice, sha(data)), data=data, headers=h)
    assert (await again.json())["status"] == "exists"
    used = await (await client.get(f"/storage/usage/{alice.address_name}", headers=h)).json()
    assert used["bytes"] == len(data)  # counted once
    assert [k async for k in redis.scan_iter(match=f"{redis_prefix}*upload:*")] == []  # nothing left behind

    read = await client.get(url(alice, sha(data)), headers=h)
    assert read.status == 200 and read.headers["Content-Length"] == str(len(data))
    assert await read.read() == data
    head = await client.head(url(alice, sha(data)), headers=h)
    assert head.status == 200 and head.headers["Content-Length"] == str(len(data))

    deleted = await client.delete(url(alice, sha(data)), headers=h)
    assert deleted.status == 200
    assert (await client.get(url(alice, sha(data)), headers=h)).status == 404
    assert (await (await client.get(f"/storage/usage/{alice.address_name}", headers=h)).json())["bytes"] == 0


async def test_a_body_that_is_not_the_named_hash_is_refused_and_left_nowhere(client: Any, alice: Wallet, redis: Any,
                                                                           redis_prefix: str) -> None:
    await register(client, alice)
    h = await login(client, alice)
    data = os.urandom(BLOB_CHUNK + 10)
    answer = await client.put(url(alice, sha(b"something else")), data=chunked(data), headers=h)
    assert answer.status == 400 and (await answer.json())["error"] == "hash_mismatch"
    assert [k async for k in redis.scan_iter(match=f"{redis_prefix}*{{st:*")
            if b"upload" in k or b"blob" in k] == []


async def test_size_and_quota_limits(aiohttp_client: Any, settings: BackendSettings, redis: Any,
                                     alice: Wallet) -> None:
    client, h = await limited_client(aiohttp_client, settings, redis, alice, quota_bytes=100_000, max_blob=60_000)
    big = os.urandom(60_001)
    declared = await client.put(url(alice, sha(big)), data=big, headers=h)  # Content-Length says it
    assert declared.status == 413 and (await declared.json())["error"] == "blob_too_large"
    streamed = await client.put(url(alice, sha(big)), data=chunked(big, 10_000), headers=h)  # found while reading
    assert streamed.status == 413 and (await streamed.json())["error"] == "blob_too_large"
    first, second = os.urandom(60_000), os.urandom(50_000)
    assert (await client.put(url(alice, sha(first)), data=first, headers=h)).status == 200
    over = await client.put(url(alice, sha(second)), data=second, headers=h)
    assert over.status == 413 and (await over.json())["error"] == "quota_exceeded"


async def test_blobs_are_read_by_the_owner_or_a_grantee_only(client: Any, alice: Wallet, bob: Wallet,
                                                             carol: Wallet) -> None:
    for wallet in (alice, bob, carol):
        await register(client, wallet)
    ha, hb, hc = await login(client, alice), await login(client, bob), await login(client, carol)
    data = b"sealed attachment"
    assert (await client.put(url(alice, sha(data)), data=data, headers=ha)).status == 200
    assert (await client.get(url(alice, sha(data)), headers=hb)).status == 403
    signed = grant(alice, bob, "photos", None, expires=now_ms() + 60_000, secret=os.urandom(32))
    assert (await client.post(f"/storage/grants/{alice.address_name}", json=signed.to_json(), headers=ha)).status == 200
    assert await (await client.get(url(alice, sha(data)), headers=hb)).read() == data
    assert (await client.get(url(alice, sha(data)), headers=hc)).status == 403
    # Only the owner uploads or deletes.
    assert (await client.delete(url(alice, sha(data)), headers=hb)).status == 401
    assert (await client.get(url(alice, "0x1234"), headers=ha)).status == 400


async def test_a_corrupted_chunk_is_never_served_as_the_blob(client: Any, alice: Wallet, redis: Any,
                                                             redis_prefix: str) -> None:
    await register(client, alice)
    h = await login(client, alice)
    data = os.urandom(2 * BLOB_CHUNK)
    assert (await client.put(url(alice, sha(data)), data=data, headers=h)).status == 200
    [second] = [k async for k in redis.scan_iter(match=f"{redis_prefix}*blob:{sha(data)}:1")]
    await redis.set(second, b"x" * BLOB_CHUNK)  # the store is damaged behind the server's back
    read = await client.get(url(alice, sha(data)), headers=h)
    assert read.status == 200  # the first chunk was good and is on its way...
    with pytest.raises(aiohttp.ClientPayloadError):
        await read.read()  # ...but the answer ends short instead of carrying the bad chunk
