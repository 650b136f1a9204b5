"""What every benchmark shares: users with signed profiles, the service's keys, pre-built
envelopes, the cached directory the service processes use, and cleanup of the bench's Redis keys.

Users and envelopes are made before any measurement, in worker processes (an envelope costs about
0.4 ms of crypto: a message signature, two encryptions, a metadata signature). Every envelope is
distinct (its message carries its own timestamp), so the service never takes the cheaper
"already queued" path unless a benchmark wants it to.

The service processes resolve names through :class:`FixedNameLookup`: the production
:class:`ensign.ens.lookup.NameLookup`, with its cache, whose resolution step reads a table instead
of ENS. After the warm-up every lookup is a cache hit, as it is in production for active users:
what is measured is the service, not the chain.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from eth_account import Account

from ensign.config import DeliveryKeys, DeliveryLimits, DeliverySettings, RateLimit, RedisSettings
from ensign.errors import NotFound
from ensign.protocol.envelope import build_envelope, envelope_id
from ensign.protocol.keys import random_encryption_key_pair, random_signing_key_pair
from ensign.protocol.message import create_message
from ensign.protocol.models import SignedUserProfile, UserProfile
from ensign.protocol.profile import sign_profile
from ensign.ens.cache import CacheSettings
from ensign.ens.lookup import NameLookup, ResolvedUserProfile

# A bucket no benchmark empties: the limiter's script still runs on every request.
UNREACHED = RateLimit(10**12, 1)

__all__ = [
    "BenchUser",
    "Envelope",
    "FixedNameLookup",
    "NullChain",
    "ServiceSpec",
    "delete_prefix",
    "make_envelopes",
    "make_users",
]

DS_NAME = "ds.ensign.eth"
ADDR_DOMAIN = "addr.ensign.eth"
MESSAGE_CHARS = 900
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# A day: longer than any run, so the warmed cache never expires under a benchmark.
CACHE_TTL = 86_400.0


@dataclass(frozen=True)
class BenchUser:
    """A dm3 user: address, ``<address>.addr.ensign.eth`` name, profile keys, signed profile."""

    address: str
    name: str
    signing_public_key: str
    signing_secret_key: str
    encryption_public_key: str
    encryption_secret_key: str
    profile: dict[str, Any]

    @property
    def signed_profile(self) -> SignedUserProfile:
        return SignedUserProfile.from_json(self.profile)


@dataclass(frozen=True)
class Envelope:
    """A submission ready to send: the receiver (index into the users), its id, the JSON-RPC body."""

    receiver: int
    message_id: str
    body: bytes


def _make_user(_: int) -> BenchUser:
    wallet = Account.create()
    signing, encryption = random_signing_key_pair(), random_encryption_key_pair()
    profile = sign_profile(
        "0x" + bytes(wallet.key).hex(),
        UserProfile(
            public_encryption_key=encryption.public_key,
            public_signing_key=signing.public_key,
            delivery_services=(DS_NAME,),
        ),
    )
    return BenchUser(
        address=wallet.address,
        name=f"{wallet.address.lower()}.{ADDR_DOMAIN}",
        signing_public_key=signing.public_key,
        signing_secret_key=signing.secret_key,
        encryption_public_key=encryption.public_key,
        encryption_secret_key=encryption.secret_key,
        profile=profile.to_json(),
    )


def make_users(count: int, workers: int = 2) -> list[BenchUser]:
    """``count`` users with fresh wallets and signed profiles (a wallet signature each)."""
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_make_user, range(count), chunksize=max(1, count // (4 * workers))))


# Worker-process state for make_envelopes: the users and DS key, sent once per worker.
_worker: dict[str, Any] = {}


def _init_envelope_worker(users: list[tuple[str, str, str]], ds_public_key: str) -> None:
    _worker["users"] = users
    _worker["ds"] = ds_public_key


def _make_envelope(job: tuple[int, int, int, int]) -> Envelope:
    index, sender, receiver, timestamp = job
    users, ds_key = _worker["users"], _worker["ds"]
    sender_name, sender_key, _ = users[sender]
    receiver_name, _, receiver_key = users[receiver]
    # 900 characters of text, distinct per message.
    text = (f"message {index} " * 100)[:MESSAGE_CHARS]
    message = create_message(receiver_name, sender_name, text, sender_key, timestamp=timestamp)
    envelope = build_envelope(message, sender_key, receiver_key, ds_key)
    rpc = {"jsonrpc": "2.0", "id": index, "method": "dm3_submitMessage", "params": [json.dumps(envelope.to_json())]}
    return Envelope(receiver=receiver, message_id=envelope_id(envelope), body=json.dumps(rpc).encode())


def make_envelopes(
    users: Sequence[BenchUser],
    ds_public_key: str,
    count: int,
    *,
    receivers: Sequence[int] | None = None,
    seed: int = 1,
    workers: int = 2,
) -> list[Envelope]:
    """``count`` distinct envelopes of 900-character messages from random senders to random
    receivers (or to ``receivers`` only), encrypted to the service's key ``ds_public_key``."""
    import random

    rng = random.Random(seed)
    pool_receivers = list(receivers) if receivers is not None else list(range(len(users)))
    jobs = []
    base = 1_700_000_000_000 + seed * 10_000_000
    for i in range(count):
        receiver = rng.choice(pool_receivers)
        sender = rng.randrange(len(users) - 1)
        sender += sender >= receiver  # never oneself
        jobs.append((i, sender, receiver, base + i))
    compact = [(u.name, u.signing_secret_key, u.encryption_public_key) for u in users]
    with ProcessPoolExecutor(workers, initializer=_init_envelope_worker, initargs=(compact, ds_public_key)) as pool:
        return list(pool.map(_make_envelope, jobs, chunksize=256))


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a delivery-service process of the bench needs, written to a JSON file for it."""

    redis_url: str
    prefix: str
    url: str
    jwt_secret: str
    signing_public_key: str
    signing_private_key: str
    encryption_public_key: str
    encryption_private_key: str
    users: list[dict[str, Any]]

    @classmethod
    def create(cls, redis_url: str, prefix: str, users: Sequence[BenchUser]) -> ServiceSpec:
        signing, encryption = random_signing_key_pair(), random_encryption_key_pair()
        return cls(
            redis_url=redis_url,
            prefix=prefix,
            url="http://127.0.0.1:8083",
            jwt_secret=secrets.token_hex(32),
            signing_public_key=signing.public_key,
            signing_private_key=signing.secret_key,
            encryption_public_key=encryption.public_key,
            encryption_private_key=encryption.secret_key,
            users=[{"name": u.name, "address": u.address, "profile": u.profile} for u in users],
        )

    def settings(self, port: int) -> DeliverySettings:
        """The service's settings; size and TTL limits at their production defaults. The quotas
        and rate limits are checked on every request, as in production, but set where the
        benchmark's few senders never reach them (it measures their cost, not their refusals)."""
        return DeliverySettings(
            keys=DeliveryKeys(
                signing_public_key=self.signing_public_key,
                signing_private_key=self.signing_private_key,
                encryption_public_key=self.encryption_public_key,
                encryption_private_key=self.encryption_private_key,
            ),
            jwt_secret=self.jwt_secret,
            port=port,
            url=self.url,
            redis=RedisSettings(url=self.redis_url, prefix=self.prefix),
            log_level="INFO",
            limits=DeliveryLimits(
                max_queued_messages=10**12, max_queued_bytes=10**15,
                sender=UNREACHED, pair=UNREACHED, address=UNREACHED, login=UNREACHED,
                sockets_per_account=10**6, sockets_per_address=10**6,
            ),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: Path) -> ServiceSpec:
        return cls(**json.loads(path.read_text()))


class FixedNameLookup(NameLookup):
    """The production lookup and its cache; resolution (on a cache miss) reads a table, not ENS.

    :param users: ``{"name", "address", "profile"}`` entries, as in :class:`ServiceSpec`.
    """

    def __init__(self, users: Sequence[dict[str, Any]]) -> None:
        super().__init__(None, cache=CacheSettings(ttl=CACHE_TTL, negative_ttl=CACHE_TTL, max_entries=100_000))
        self._table = {u["name"]: u for u in users}

    async def _address(self, name: str) -> str:
        entry = self._table.get(name)
        if entry is None:
            raise NotFound(f"{name} has no address record")
        return str(entry["address"])

    async def _user_profile(self, name: str) -> ResolvedUserProfile:
        entry = self._table.get(name)
        if entry is None:
            raise NotFound(f"{name} has no dm3 profile")
        return ResolvedUserProfile(name, entry["address"], SignedUserProfile.from_json(entry["profile"]))

    async def warm(self) -> None:
        """Resolve every name once, so each later lookup is a cache hit."""
        for name in self._table:
            await self.address(name)
            await self.user_profile(name)


class NullChain:
    """Chain reads for a service whose accounts have no spam rules: only ``/health`` reads it."""

    async def transaction_count(self, address: str) -> int:
        raise RuntimeError("the bench's accounts have no spam rules")

    async def balance(self, address: str) -> int:
        raise RuntimeError("the bench's accounts have no spam rules")

    async def token_balance(self, token: str, address: str) -> int:
        raise RuntimeError("the bench's accounts have no spam rules")

    async def block_number(self) -> int:
        return 0


def redis_url() -> str:
    """``REDIS_URL``, else the local default."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


async def delete_prefix(redis: aioredis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (SCAN + UNLINK, never KEYS); returns how many."""
    removed = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=prefix.replace("*", r"\*") + "*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += int(await redis.unlink(*batch))
            batch = []
    if batch:
        removed += int(await redis.unlink(*batch))
    return removed
