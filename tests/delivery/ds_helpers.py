"""Helpers and fixtures for the delivery-service app tests (import the fixtures you use).

``MemoryDirectory`` stands in for ENS in the tests that exercise one rule at a time; the
end-to-end tests (test_ds_e2e.py) resolve through the real chain, backend, gateway and lookup.
Redis is always the real one (the shared ``redis`` / ``redis_prefix`` fixtures).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from eth_account import Account as EthAccount

from ensign.config import DeliveryKeys, DeliverySettings, RedisSettings
from ensign.ens.wallets import WalletSignatures
from ensign.errors import NotFound
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import sign
from ensign.protocol.keys import (
    ProfileKeys,
    personal_sign,
    profile_keys_from_wallet,
    random_encryption_key_pair,
    random_signing_key_pair,
)
from ensign.protocol.models import DeliveryServiceProfile, SignedUserProfile, UserProfile
from ensign.protocol.profile import sign_profile

DS_URL = "http://ds.test.invalid"
DS_NAME = "ds.ensign.eth"
START = 1_800_000_000.0  # seconds: the controlled clock's start


class Clock:
    """A clock tests move by hand: ``clock()`` is now, ``clock.advance(s)`` moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


@dataclass
class User:
    """A wallet, its derived dm3 keys, and its signed profile (listing this DS)."""

    private_key: str
    address: str
    keys: ProfileKeys
    profile: SignedUserProfile

    @classmethod
    def create(cls) -> User:
        acct = EthAccount.create()
        private_key = "0x" + bytes(acct.key).hex()
        keys = profile_keys_from_wallet(private_key)
        profile = sign_profile(
            private_key,
            UserProfile(
                public_encryption_key=keys.encryption.public_key,
                public_signing_key=keys.signing.public_key,
                delivery_services=(DS_NAME,),
            ),
        )
        return cls(private_key, acct.address, keys, profile)

    def with_new_keys(self) -> User:
        """The same wallet with another profile (fresh random keys), also signed by the wallet:
        what a rotation publishes, or, seen the other way, a superseded profile whose keys leaked."""
        signing, encryption = random_signing_key_pair(), random_encryption_key_pair()
        keys = ProfileKeys(encryption=encryption, signing=signing, storage_key=self.keys.storage_key,
                           nonce=self.keys.nonce)
        profile = sign_profile(self.private_key, UserProfile(
            public_encryption_key=encryption.public_key, public_signing_key=signing.public_key,
            delivery_services=(DS_NAME,)))
        return User(self.private_key, self.address, keys, profile)

    def binding(self, timestamp: int, *, name: str | None = None, signing_key: str | None = None,
                wallet_key: str | None = None, ds_url: str = DS_URL) -> dict[str, Any]:
        """A binding message (wallet-signed, EIP-191) for this profile's signing key."""
        message = {"deliveryService": ds_url, "ensName": name or self.name, "timestamp": timestamp,
                   "topic": "bindProfile", "publicSigningKey": signing_key or self.keys.signing.public_key}
        return {"message": message, "signature": personal_sign(wallet_key or self.private_key, stringify(message))}

    @property
    def name(self) -> str:
        return f"{self.address.lower()}.addr.ensign.eth"

    @property
    def address_name(self) -> str:
        return self.name

    def signed(self, topic: str, timestamp: int, *, name: str | None = None, settings: dict[str, Any] | None = None,
               ds_url: str = DS_URL, secret_key: str | None = None) -> dict[str, Any]:
        """A signed account message body."""
        message: dict[str, Any] = {"deliveryService": ds_url, "ensName": name or self.name, "timestamp": timestamp,
                                   "topic": topic}
        if settings is not None:
            message["settings"] = settings
        return {"message": message, "signature": sign(secret_key or self.keys.signing.secret_key, stringify(message))}


@dataclass(frozen=True)
class Resolved:
    name: str
    address: str
    signed_profile: SignedUserProfile
    #: The address's revoked signing keys ({key: revokedAt ms}), as the lookup merges them.
    revoked: Mapping[str, int] = field(default_factory=dict)


@dataclass
class MemoryDirectory:
    """ENS as a dict: name → user. Raises ``NotFound`` like ``ensign.ens.lookup.NameLookup``."""

    names: dict[str, User] = field(default_factory=dict)
    services: dict[str, DeliveryServiceProfile] = field(default_factory=dict)

    def add(self, user: User, *aliases: str) -> None:
        for name in (user.name, *aliases):
            self.names[name.lower()] = user

    async def address(self, name: str) -> str:
        user = self.names.get(name.lower())
        if user is None:
            raise NotFound(f"{name} has no address record")
        return user.address

    async def user_profile(self, name: str) -> Resolved:
        user = self.names.get(name.lower())
        if user is None:
            raise NotFound(f"{name} has no dm3 profile")
        return Resolved(name.lower(), user.address, user.profile)

    async def delivery_service_profile(self, name: str) -> DeliveryServiceProfile:
        profile = self.services.get(name.lower())
        if profile is None:
            raise NotFound(f"{name} has no delivery service profile")
        return profile

    async def delivery_service_signing_keys(self, name: str) -> tuple[str, ...]:
        return ((await self.delivery_service_profile(name)).public_signing_key,)

    async def wallet_signed(self, address: str, text: str, signature: str) -> bool:
        # No chain here: wallets are accounts with keys (contract wallets: tests/test_contract_wallet.py).
        return await WalletSignatures().verify(address, text, signature)


@dataclass
class MemoryChain:
    """Chain reads from dicts (spam rules by rule; the e2e tests read the embedded chain)."""

    nonces: dict[str, int] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    tokens: dict[tuple[str, str], int] = field(default_factory=dict)

    async def transaction_count(self, address: str) -> int:
        return self.nonces.get(address, 0)

    async def balance(self, address: str) -> int:
        return self.balances.get(address, 0)

    async def token_balance(self, token: str, address: str) -> int:
        return self.tokens.get((token, address), 0)

    async def block_number(self) -> int:
        return 1


def make_settings(prefix: str, **overrides: Any) -> DeliverySettings:
    signing, encryption = random_signing_key_pair(), random_encryption_key_pair()
    values: dict[str, Any] = dict(
        keys=DeliveryKeys(
            signing_public_key=signing.public_key,
            signing_private_key=signing.secret_key,
            encryption_public_key=encryption.public_key,
            encryption_private_key=encryption.secret_key,
        ),
        jwt_secret=secrets.token_hex(32),
        url=DS_URL,
        redis=RedisSettings(prefix=prefix),
    )
    values.update(overrides)
    return DeliverySettings(**values)


async def keys_under(redis: aioredis.Redis, prefix: str) -> list[str]:
    """Sorted names of every key under ``prefix`` (SCAN), except the rate limits' token buckets:
    every request spends tokens, refused ones too (tests/delivery/test_limits.py checks them)."""
    # A set first: SCAN may return a key more than once (while Redis resizes its table).
    keys = {key.decode() async for key in redis.scan_iter(match=f"{prefix}*", count=500)}
    return sorted(key for key in keys if not key.startswith(f"{prefix}rate:"))


async def dump(redis: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` with its value, to assert that a refusal changed nothing."""
    out: dict[str, Any] = {}
    for key in await keys_under(redis, prefix):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out[key] = await redis.get(key)
        elif kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def users() -> list[User]:
    # Deriving keys costs a wallet signature; a few users, made once, serve every test.
    return [User.create() for _ in range(3)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory(users: list[User]) -> MemoryDirectory:
    d = MemoryDirectory()
    d.add(users[0], "alice.user.ensign.eth")
    d.add(users[1], "bob.user.ensign.eth")
    d.add(users[2])
    return d


@pytest.fixture
def chain() -> MemoryChain:
    return MemoryChain()


@pytest.fixture
def ds_settings(redis_prefix: str) -> DeliverySettings:
    return make_settings(redis_prefix)


@pytest.fixture
async def ds_client(
    aiohttp_client: Callable[..., Awaitable[Any]],
    redis: aioredis.Redis,
    ds_settings: DeliverySettings,
    directory: MemoryDirectory,
    chain: MemoryChain,
    clock: Clock,
) -> AsyncIterator[Any]:
    """A test client of the production app on real Redis with the in-memory directory."""
    from delivery.app import create_app

    app = create_app(ds_settings, redis=redis, directory=directory, chain=chain, clock=clock, sweep_interval=None)
    yield await aiohttp_client(app)


# -- flows ------------------------------------------------------------------------------------


async def signup(client: Any, user: User, name: str | None = None) -> str:
    """dm3 sign-up (POST /profile); returns the challenge the service answers with."""
    resp = await client.post(f"/profile/{name or user.name}", json=user.profile.to_json())
    assert resp.status == 200, await resp.text()
    challenge = await resp.json()
    assert isinstance(challenge, str)
    return challenge


async def login(client: Any, user: User, name: str | None = None) -> str:
    """GET /auth challenge, sign it with the profile key, POST it: the session token."""
    name = name or user.name
    resp = await client.get(f"/auth/{name}")
    assert resp.status == 200, await resp.text()
    challenge = await resp.json()
    signature = sign(user.keys.signing.secret_key, challenge)
    resp = await client.post(f"/auth/{name}", json={"challenge": challenge, "signature": signature})
    assert resp.status == 200, await resp.text()
    token = await resp.json()
    assert isinstance(token, str)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def envelope(
    sender: User, receiver: User, settings: DeliverySettings, text: str = "hello", *, form: str = "npm",
    sender_name: str | None = None, receiver_name: str | None = None, signing_key: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """An envelope as a dm3 client builds it, addressed to this DS."""
    from ensign.protocol.envelope import build_envelope
    from ensign.protocol.message import create_message

    key = signing_key or sender.keys.signing.secret_key
    message = create_message(receiver_name or receiver.name, sender_name or sender.name, text, key,
                             timestamp=timestamp if timestamp is not None else 1_700_000_000_000)
    env = build_envelope(message, key, receiver.keys.encryption.public_key,
                         settings.keys.encryption_public_key, form=form)
    return env.to_json()


def rpc_submit(env: dict[str, Any]) -> dict[str, Any]:
    """The JSON-RPC body dm3's client posts (the envelope JSON-stringified inside params)."""
    import json

    return {"jsonrpc": "2.0", "method": "dm3_submitMessage", "params": [json.dumps(env)]}
