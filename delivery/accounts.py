"""Accounts on this delivery service: who may receive here, with which settings.

Identity
========

An account is identified by the EIP-55 address that the name's ``addr`` record resolves to. Every
name that resolves to the same address (``0xabc….addr.ensign.eth``, ``alice.user.ensign.eth``,
``alice.eth``) reaches the same account, the same queue and the same sockets, so messages, acks and
pushes never split across aliases. A name is resolved on each request (through the cached
:class:`delivery.ports.Directory`), so re-pointing a name moves it to the other account.

Signed account messages
=======================

Creation, deletion and settings changes can be made with a message signed by the Ed25519 signing
key of the profile that ENS publishes for the name::

    {"message": {"deliveryService": "<this service's URL>", "ensName": "<name>",
                 "timestamp": <ms>, "topic": "createAccount" | "deleteAccount" | "updateSettings",
                 "settings": {...}},          # createAccount (optional) and updateSettings only
     "signature": "<base64 Ed25519 over stringify(message)>"}

A message is accepted once: its timestamp must be within :data:`REPLAY_WINDOW` seconds of this
service's clock, and its signature is remembered (``SET NX``) until the window has passed. A
creation must be newer than the account's last deletion, a deletion or settings change newer than
the account's creation, so a message signed before either event cannot undo it.

dm3 sign-up (``POST /profile/<name>`` with the SignedUserProfile) also creates an account, since
dm3 clients know no other way; see :meth:`Accounts.create_from_profile` for what it can and cannot do.

Binding
=======

Any name whose ``addr`` is the account's address reaches the account, and anyone can point a name
they own at any address and publish under it a profile that address once signed (profiles are
public, and superseded ones stay valid signatures). So the profile alone cannot say which key
speaks for the account. The account remembers the profile it was created or last re-bound with,
and its public signing key (``key``): a login, a signed deletion or settings change, and through
the session every fetch, ack and socket, must present that key, whatever name is used. A profile
with another key gets 403 ``key_not_bound``.

Re-binding to a new profile (new keys) needs the wallet itself: a *binding message*
(:class:`SignedBinding`) naming the new public signing key, timestamped, EIP-191 ``personal_sign``ed
by the account's address, used once, within :data:`REPLAY_WINDOW`, newer than the current binding.
The profile ENS publishes for the name must carry that key. A binding message also re-creates a
deleted account (or creates an absent one): while a tombstone exists, only a ``createAccount``
signed with the key bound at the deletion, or a binding message, re-creates the account; a
profile (public data) never does. A re-binding or a deletion ends every session and socket of the
old binding at once (the sessions channel, :mod:`delivery.keys`).

Devices
=======

The wallet can also list the account's devices, each with its own signing key and cursor
(:mod:`delivery.devices`, :meth:`Accounts.set_devices`).

Redis keys
==========

The account hash, its tombstone and the used-message markers: :mod:`delivery.keys` names them and
documents what they hold.

Every write is one Lua script, atomic on the server and on Redis Cluster (redis-py's cluster
client cannot run WATCH transactions): ``create_account.lua`` (only if absent, and only if the
tombstone is still the one the rules were checked against), ``update_settings.lua`` (only while
the account exists), and deletion, :meth:`delivery.queue.MessageQueue.delete_account`: the account
hash and the queue go, and the tombstone is written, at once. The queue stores a message only
while the account hash exists (checked in its insert script), so nothing is ever queued for a
deleted account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ensign.ens.wallets import WalletSignatures
from ensign.errors import InvalidRequest, SignatureError
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import verify
from ensign.protocol.encoding import normalize_name
from ensign.protocol.models import SignedUserProfile
from ensign.protocol.profile import profile_hash
from ensign.protocol.schema import load
from ensign.redis_client import RedisClient, lua_script

from .batching import ScriptBatcher
from .devices import NO_DEVICES, DeviceList, SignedDevices
from .errors import (
    AccountChanged,
    ProfileNotPublished,
    AccountDeleted,
    AccountExists,
    InvalidMessage,
    KeyNotBound,
    InvalidSettings,
    MessageOutsideWindow,
    NoAccount,
    ReplayedMessage,
    StaleMessage,
    WrongAccount,
    WrongDeliveryService,
)
from .keys import account_key, queue_keys, signed_message_key, tombstone_key
from .ports import Clock
from .queue import MessageQueue
from .schemas import SIGNED_ACCOUNT_MESSAGE, SIGNED_BINDING, settings_schema

#: ``wallet_signed(address, text, signature)``: whether ``address`` signed ``text`` (EIP-191), by
#: its key or as a contract wallet (``Directory.wallet_signed``).
WalletCheck = Callable[[str, str, str], Awaitable[bool]]

REPLAY_WINDOW = 300  # seconds either side of the clock a signed account message is accepted
#: Seconds intake reuses a receiver's account it read (:meth:`Accounts.get_recent`). Never stale
#: for what is stored: the insert script compares the settings intake checked with the stored ones
#: and refuses on a change (intake then reads them again), and refuses without the account.
RECENT_ACCOUNT_SECONDS = 30.0
#: Most accounts kept for :meth:`Accounts.get_recent`; the oldest entry goes first.
RECENT_ACCOUNTS = 10_000


def account_state(fields: dict[str, str]) -> str:
    """What intake's checks depend on, as the insert script compares it (``enqueue.lua``): the
    stored settings, the notify flag and whether the account is suspended, one per line."""
    return f"{fields['settings']}\n{fields.get('notify', '')}\n{'1' if 'suspended' in fields else ''}"
MAX_QUOTA = 2**53  # upper bound of a per-account quota when the caller names none


# -- Settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSettings:
    """What the owner sets for this service. ``None`` means "the service default".

    Wire form (dm3-style names; every key optional)::

        {"maxMessageSize": 50000,            # bytes, 1024 … the service's MESSAGE_SIZE_LIMIT
         "messageTTL": 86400,                # seconds, 60 … the service's MESSAGE_TTL
         "maxQueuedMessages": 1000,          # 1 … the service's MAX_QUEUED_MESSAGES
         "maxQueuedBytes": 5000000,          # 1024 … the service's MAX_QUEUED_BYTES
         "spamFilterRules": {"minNonce": 1, "minBalance": "1000000000000000",
                             "minTokenBalance": {"address": "0x…", "amount": "1"}},
         "notifications": {"enabled": true,
                           "channels": [{"type": "EMAIL", "recipientValue": "a@b.example"}]}}

    ``notifications`` is stored for the owner's own use; what this service sends goes to the
    channels managed through dm3's ``/notifications`` routes (:mod:`delivery.notifications`).
    """

    max_message_size: int | None = None
    message_ttl: int | None = None
    max_queued_messages: int | None = None
    max_queued_bytes: int | None = None
    spam_filter_rules: dict[str, Any] = field(default_factory=dict)
    notifications: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        if self.max_message_size is not None:
            obj["maxMessageSize"] = self.max_message_size
        if self.message_ttl is not None:
            obj["messageTTL"] = self.message_ttl
        if self.max_queued_messages is not None:
            obj["maxQueuedMessages"] = self.max_queued_messages
        if self.max_queued_bytes is not None:
            obj["maxQueuedBytes"] = self.max_queued_bytes
        if self.spam_filter_rules:
            obj["spamFilterRules"] = self.spam_filter_rules
        if self.notifications:
            obj["notifications"] = self.notifications
        return obj

    @classmethod
    def from_json(
        cls,
        obj: object,
        *,
        size_limit: int,
        ttl_limit: int,
        queued_limit: int = MAX_QUOTA,
        bytes_limit: int = MAX_QUOTA,
    ) -> AccountSettings:
        """Validate settings sent by an owner (:func:`delivery.schemas.settings_schema`);
        :class:`~delivery.errors.InvalidSettings` names every bad field. The quotas may only be
        lowered: ``queued_limit`` and ``bytes_limit`` are the service's."""
        schema = settings_schema(size_limit, ttl_limit, queued_limit, bytes_limit)
        loaded = load(schema, obj, "settings", error=InvalidSettings)
        rules = {rule: value for rule, value in loaded.get("spamFilterRules", {}).items() if value is not None}
        return cls(
            max_message_size=loaded.get("maxMessageSize"),
            message_ttl=loaded.get("messageTTL"),
            max_queued_messages=loaded.get("maxQueuedMessages"),
            max_queued_bytes=loaded.get("maxQueuedBytes"),
            spam_filter_rules=rules,
            notifications=loaded.get("notifications", {}),
        )

    @classmethod
    def from_stored(cls, text: str) -> AccountSettings:
        obj = json.loads(text)
        return cls(
            max_message_size=obj.get("maxMessageSize"),
            message_ttl=obj.get("messageTTL"),
            max_queued_messages=obj.get("maxQueuedMessages"),
            max_queued_bytes=obj.get("maxQueuedBytes"),
            spam_filter_rules=obj.get("spamFilterRules", {}),
            notifications=obj.get("notifications", {}),
        )


# -- Accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A stored account. ``created`` (ms) is its generation for the deletion script; ``bound`` (ms)
    is the time of its binding to ``signing_key`` (module docstring), its creation or last
    re-binding: session tokens carry it as their generation (``gen``), so both a re-creation and a
    re-binding end older sessions."""

    address: str
    created: int
    origin: str
    settings: AccountSettings
    profile_hash: str
    #: ``notify`` field: notifications on with an enabled, verified channel (delivery.notifications).
    notify: bool = False
    #: ``suspended`` field: set by an operator (``ensign admin suspend``); refuses incoming messages.
    suspended: bool = False
    signing_key: str = ""
    bound: int = 0
    #: ``devices`` field (:mod:`delivery.devices`); ``None`` when the account has no device list.
    devices: DeviceList | None = None
    #: The ``devices`` field as stored ("" when absent): the state ``set_devices.lua`` compares.
    devices_stored: str = ""

    def accepts(self, profile: SignedUserProfile) -> bool:
        """Whether ``profile`` is the one the account is bound to (its signing key; for an account
        stored before the binding existed, the profile's dm3Hash)."""
        if self.signing_key:
            return profile.profile.public_signing_key == self.signing_key
        return profile_hash(profile) == self.profile_hash

    def require_bound(self, profile: SignedUserProfile) -> None:
        """403 ``key_not_bound`` unless :meth:`accepts` ``profile``."""
        if not self.accepts(profile):
            raise KeyNotBound(_NOT_BOUND)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account": self.address,
            "createdAt": self.created,
            "boundAt": self.bound,
            "origin": self.origin,
            "settings": self.settings.to_json(),
        }
        if self.suspended:
            body["suspended"] = True
        return body


@dataclass(frozen=True)
class SignedAccountMessage:
    """A parsed, not yet verified account message."""

    delivery_service: str
    ens_name: str
    timestamp: int
    topic: str
    settings: dict[str, Any] | None
    payload: str
    signature: str

    @classmethod
    def from_body(cls, body: object) -> SignedAccountMessage:
        """Parse ``{"message": {...}, "signature": "..."}`` (:data:`delivery.schemas.SIGNED_ACCOUNT_MESSAGE`);
        :class:`~delivery.errors.InvalidMessage` names every bad field."""
        loaded = load(SIGNED_ACCOUNT_MESSAGE, body, "account message", error=InvalidMessage)
        message = loaded["message"]
        return cls(
            delivery_service=message["deliveryService"],
            ens_name=message["ensName"],
            timestamp=message["timestamp"],
            topic=message["topic"],
            settings=message.get("settings"),
            # The signature covers the message exactly as sent.
            payload=stringify(body["message"]),  # type: ignore[index]
            signature=loaded["signature"],
        )


@dataclass(frozen=True)
class SignedBinding:
    """A parsed, not yet verified binding message (module docstring, "Binding")::

        {"message": {"deliveryService": "<this service's URL>", "ensName": "<name>",
                     "timestamp": <ms>, "topic": "bindProfile", "publicSigningKey": "<base64>"},
         "signature": "0x<EIP-191 personal_sign of stringify(message) by the account's address>"}
    """

    delivery_service: str
    ens_name: str
    timestamp: int
    signing_key: str
    payload: str
    signature: str

    @classmethod
    def from_body(cls, body: object) -> SignedBinding:
        """Parse a binding message (:data:`delivery.schemas.SIGNED_BINDING`); 400
        ``invalid_message`` names every bad field."""
        loaded = load(SIGNED_BINDING, body, "binding message", error=InvalidMessage)
        message = loaded["message"]
        return cls(
            delivery_service=message["deliveryService"],
            ens_name=message["ensName"],
            timestamp=message["timestamp"],
            signing_key=message["publicSigningKey"],
            payload=stringify(body["message"]),  # type: ignore[index]
            signature=loaded["signature"],
        )


class Accounts:
    """Account storage and the rules for creating, changing and deleting accounts.

    :param redis: client for the account keys.
    :param queue: the message queues (deleted with the account).
    :param prefix: Redis key prefix.
    :param service_url: this service's public URL; signed messages must name it.
    :param size_limit: the service's message size limit (per-account limits must not exceed it).
    :param ttl_limit: the service's message TTL in seconds (per-account TTLs must not exceed it).
    :param clock: seconds since the epoch.
    :param queued_limit: the service's message quota per receiver (an owner may only lower it).
    :param bytes_limit: the service's byte quota per receiver (likewise).
    :param batcher: the script batcher account reads go through (:mod:`delivery.batching`), the
        service's own (the caller closes it); without one they are script calls of the client.
    """

    def __init__(
        self,
        redis: RedisClient,
        queue: MessageQueue,
        *,
        prefix: str,
        service_url: str,
        size_limit: int,
        ttl_limit: int,
        clock: Clock,
        queued_limit: int = MAX_QUOTA,
        bytes_limit: int = MAX_QUOTA,
        wallet_signed: WalletCheck | None = None,
        batcher: ScriptBatcher | None = None,
    ) -> None:
        self._redis = redis
        self._wallet_signed: WalletCheck = wallet_signed or WalletSignatures().verify
        self._queue = queue
        self._prefix = prefix
        self._service_url = service_url
        self.size_limit = size_limit
        self.ttl_limit = ttl_limit
        self.queued_limit = queued_limit
        self.bytes_limit = bytes_limit
        self._clock = clock
        # Scripts, not WATCH/MULTI: one round trip each, and redis-py 8.1's cluster pipeline never
        # sends the commands that follow a WATCH (it returns the pipeline instead of the reply).
        self._create = redis.register_script(lua_script("delivery.lua", "create_account"))
        self._update_settings = redis.register_script(lua_script("delivery.lua", "update_settings"))
        self._bind = redis.register_script(lua_script("delivery.lua", "bind_account"))
        # A script so that the service's reads go through its batcher: under concurrent requests
        # HGETALL through the client cost 55-62 µs of this process's CPU per read, the same read
        # as a batched script call 4-13 µs.
        self._read_script = redis.register_script(lua_script("delivery.lua", "read_account"))
        self._batcher = batcher
        # address -> (monotonic deadline, (account, stored settings)): receivers read by intake.
        self._recent: dict[str, tuple[float, tuple[Account, str]]] = {}

    async def get(self, address: str) -> Account | None:
        """The account of ``address`` or ``None``."""
        read = await self._read(address)
        return None if read is None else read[0]

    async def _read(self, address: str) -> tuple[Account, str] | None:
        """The account and :func:`account_state` of its stored fields."""
        keys = [account_key(self._prefix, address)]
        if self._batcher is not None:
            flat = await self._batcher.call(self._read_script, keys, [])
        else:
            flat = await self._read_script(keys=keys)
        if not flat:
            return None
        text: list[str] = [item.decode() if isinstance(item, bytes) else item for item in flat]
        fields = dict(zip(text[::2], text[1::2]))
        account = Account(
            address=address,
            created=int(fields["created"]),
            origin=fields["origin"],
            settings=AccountSettings.from_stored(fields["settings"]),
            profile_hash=fields.get("profile", ""),
            notify=fields.get("notify") == "1",
            suspended="suspended" in fields,
            signing_key=fields.get("key", ""),
            bound=int(fields.get("bound", fields["created"])),
            devices=DeviceList.from_stored(fields["devices"]) if "devices" in fields else None,
            devices_stored=fields.get("devices", ""),
        )
        return account, account_state(fields)

    async def get_recent(self, address: str) -> tuple[Account, str] | None:  # (account, account_state)
        """:meth:`_read`, or the same read made less than :data:`RECENT_ACCOUNT_SECONDS` ago.

        Intake reads the receiver's account for every submission; under load most receivers get
        several messages a second, and this saves one Redis round trip of the two per message.
        Pass the state to :meth:`MessageQueue.enqueue`, which refuses if the account changed since
        (then call :meth:`forget_recent` and read again). Absent accounts are never remembered.
        """
        now = time.monotonic()
        hit = self._recent.get(address)
        if hit is not None and hit[0] > now:
            return hit[1]
        read = await self._read(address)
        if read is None:
            self._recent.pop(address, None)
            return None
        if len(self._recent) >= RECENT_ACCOUNTS and address not in self._recent:
            del self._recent[next(iter(self._recent))]
        self._recent[address] = (now + RECENT_ACCOUNT_SECONDS, read)
        return read

    def forget_recent(self, address: str) -> None:
        """Drop what :meth:`get_recent` remembers of ``address``."""
        self._recent.pop(address, None)

    async def exists(self, address: str) -> bool:
        """Whether ``address`` has an account (one EXISTS)."""
        return bool(await self._redis.exists(account_key(self._prefix, address)))

    def parse_settings(self, obj: object) -> AccountSettings:
        """Validate owner-supplied settings against this service's limits."""
        return AccountSettings.from_json(
            obj, size_limit=self.size_limit, ttl_limit=self.ttl_limit,
            queued_limit=self.queued_limit, bytes_limit=self.bytes_limit,
        )

    def check_signed(self, message: SignedAccountMessage, name: str, topic: str, public_signing_key: str) -> None:
        """Check a signed account message's target, topic, window and signature (no Redis).

        :param name: the normalised name from the path; the message must carry the same name.
        """
        if message.topic != topic:
            raise InvalidMessage(f"message.topic must be {topic} on this endpoint")
        self._check_target(message, name)
        if not verify(public_signing_key, message.payload, message.signature):
            raise SignatureError("signature does not verify with the signing key the account is bound to")

    async def check_binding(self, binding: SignedBinding | SignedDevices, name: str, address: str) -> None:
        """Check a binding (or device list) message's target, window and wallet signature (no
        Redis): it must be ``address``'s EIP-191 signature of the message, by its key or as a
        contract wallet (the ``wallet_signed`` check, :mod:`ensign.ens.wallets`)."""
        self._check_target(binding, name)
        if not await self._wallet_signed(address, binding.payload, binding.signature):
            raise SignatureError("signature is not the EIP-191 signature of the name's address over the message")

    def _check_target(self, message: SignedAccountMessage | SignedBinding | SignedDevices, name: str) -> None:
        if message.delivery_service != self._service_url:
            raise WrongDeliveryService(
                f"message.deliveryService names another delivery service; this one is {self._service_url}"
            )
        try:
            claimed = normalize_name(message.ens_name)
        except InvalidRequest:
            raise InvalidMessage("message.ensName is not a valid name") from None
        if claimed != name:
            raise WrongAccount("message.ensName is not the name in the path")
        now_ms = int(self._clock() * 1000)
        if abs(now_ms - message.timestamp) > REPLAY_WINDOW * 1000:
            raise MessageOutsideWindow(
                f"message.timestamp is more than {REPLAY_WINDOW} s away from this service's clock"
            )

    async def _use_once(self, address: str, message: SignedAccountMessage | SignedBinding | SignedDevices) -> None:
        now_ms = int(self._clock() * 1000)
        ttl = max(1, (message.timestamp + REPLAY_WINDOW * 1000 - now_ms) // 1000 + 1)
        key = signed_message_key(self._prefix, address, message.signature)
        if not await self._redis.set(key, "1", nx=True, ex=ttl):
            raise ReplayedMessage("this signed message was already used")

    async def create_signed(
        self, address: str, message: SignedAccountMessage, profile: SignedUserProfile
    ) -> Account:
        """Create the account, bound to ``profile``, from a ``createAccount`` message verified with
        its key (call :meth:`check_signed` first).

        Raises :class:`Conflict` when the account exists (``account_exists``), the message was used
        (``replayed_message``) or it is not newer than the last deletion (``stale_message``);
        403 ``account_deleted`` when the account was deleted while bound to another key.
        """
        settings = self.parse_settings(message.settings) if message.settings is not None else AccountSettings()
        if await self.exists(address):
            raise AccountExists("the account already exists")
        raw_tomb = await self._tombstone_raw(address)
        tomb = _parse_tombstone(raw_tomb)
        if tomb is not None and not _tombstone_accepts(tomb, profile):
            raise AccountDeleted(
                "this account was deleted by its owner while bound to another key; "
                "re-create it with a wallet-signed binding message"
            )
        if tomb is not None and message.timestamp <= tomb["deletedAt"]:
            raise StaleMessage("the message is older than the account's deletion")
        await self._use_once(address, message)
        account = Account(
            address, message.timestamp, "signed", settings, profile_hash(profile),
            signing_key=profile.profile.public_signing_key, bound=message.timestamp,
        )
        created = await self._create_if_absent(account, raw_tomb)
        if created == 0:
            raise AccountExists("the account already exists")
        if created < 0:
            # Deleted (and maybe re-created) between our read and the write: judged on stale data.
            raise AccountExists("the account changed concurrently; try again")
        return account

    async def create_from_profile(self, address: str, profile: SignedUserProfile) -> tuple[Account, bool]:
        """dm3 sign-up: create the account, if absent, bound to a profile ENS publishes for the name.

        The caller has checked that the posted SignedUserProfile equals the one ENS publishes for
        the name and is signed by the name's address. That is public data: anyone can post it. So
        this never returns a session (the caller answers with a challenge); it refuses (403
        ``account_deleted``) whenever the account was deleted — only the owner re-creates it, with
        a signed ``createAccount`` message or a wallet-signed binding message — and (403
        ``key_not_bound``) a profile with another key than the existing account's. Returns
        ``(account, created)``.
        """
        existing = await self.get(address)
        if existing is not None:
            existing.require_bound(profile)
            return existing, False
        raw_tomb = await self._tombstone_raw(address)
        if raw_tomb is not None:
            raise AccountDeleted(
                "this account was deleted by its owner; re-create it with a signed createAccount message "
                "or a wallet-signed binding message"
            )
        now_ms = int(self._clock() * 1000)
        account = Account(
            address, now_ms, "profile", AccountSettings(), profile_hash(profile),
            signing_key=profile.profile.public_signing_key, bound=now_ms,
        )
        created = await self._create_if_absent(account, raw_tomb)
        if created == 0:
            # Created by a concurrent request since our read: that one is the account.
            current = await self.get(address)
            if current is not None:
                return current, False
        if created <= 0:
            raise AccountExists("the account changed concurrently; try again")
        return account, True

    async def delete_signed(self, address: str, message: SignedAccountMessage) -> int:
        """Delete the account, its settings and its queue from a verified ``deleteAccount`` message.

        Returns how many queued messages were dropped. :class:`NotFound` when there is no account,
        :class:`Conflict` for a used message or one older than the account's creation.
        """
        account = await self.get(address)
        if account is None:
            raise NoAccount("there is no account for this name on this delivery service")
        if message.timestamp <= account.created:
            raise StaleMessage("the message is older than the account's creation")
        await self._use_once(address, message)
        tomb = json.dumps(
            {"deletedAt": message.timestamp, "profile": account.profile_hash, "key": account.signing_key}
        )
        # One script: account hash, queue and tombstone at once, and only the generation checked
        # above (a concurrent delete, or delete and re-create, makes it refuse).
        dropped = await self._queue.delete_account(address, generation=account.created, tombstone=tomb)
        self.forget_recent(address)
        if dropped is None:
            raise AccountChanged("the account changed concurrently; try again")
        return dropped

    async def update_settings(self, address: str, settings: AccountSettings) -> Account:
        """Replace the account's settings (the owner is authenticated by the caller)."""
        updated = await self._update_settings(
            keys=[account_key(self._prefix, address)], args=[stringify(settings.to_json())]
        )
        self.forget_recent(address)
        if not updated:
            raise NoAccount("there is no account for this name on this delivery service")
        account = await self.get(address)
        if account is None:
            raise NoAccount("there is no account for this name on this delivery service")
        return account

    async def update_signed(self, address: str, message: SignedAccountMessage) -> Account:
        """Apply a verified ``updateSettings`` message."""
        account = await self.get(address)
        if account is None:
            raise NoAccount("there is no account for this name on this delivery service")
        if message.timestamp <= account.created:
            raise StaleMessage("the message is older than the account's creation")
        settings = self.parse_settings(message.settings if message.settings is not None else {})
        await self._use_once(address, message)
        return await self.update_settings(address, settings)

    async def bind(self, address: str, binding: SignedBinding, profile: SignedUserProfile) -> tuple[Account, bool]:
        """Bind the account to ``profile`` from a verified binding message (call :meth:`check_binding`
        first), or create it so bound when it is absent or deleted. Returns ``(account, created)``.

        ``profile`` is the one ENS publishes for the name; it must carry the message's key (400
        ``profile_not_published``). The message must be newer than the current binding, or than
        the deletion (409 ``stale_message``), and unused (409 ``replayed_message``). Every session
        and socket of the old binding ends (``bind_account.lua`` publishes on the sessions channel).
        """
        if profile.profile.public_signing_key != binding.signing_key:
            raise ProfileNotPublished(
                "message.publicSigningKey is not the signing key of the profile ENS publishes for this name; "
                "publish that profile first"
            )
        account = await self.get(address)
        raw_tomb: str | None = None
        if account is not None and binding.timestamp <= account.bound:
            raise StaleMessage("the message is not newer than the account's current binding")
        if account is None:
            raw_tomb = await self._tombstone_raw(address)
            tomb = _parse_tombstone(raw_tomb)
            if tomb is not None and binding.timestamp <= tomb["deletedAt"]:
                raise StaleMessage("the message is older than the account's deletion")
        await self._use_once(address, binding)
        dm3_hash, stamp = profile_hash(profile), binding.timestamp
        if account is None:
            bound = Account(
                address, stamp, "wallet", AccountSettings(), dm3_hash, signing_key=binding.signing_key, bound=stamp
            )
            fields, expected = self._fields(bound), ""
        else:
            bound = replace(account, profile_hash=dm3_hash, signing_key=binding.signing_key, bound=stamp)
            fields, expected = {"profile": dm3_hash, "key": binding.signing_key, "bound": str(stamp)}, str(account.bound)
        keys = queue_keys(self._prefix, address)
        flat = [item for pair in fields.items() for item in pair]
        result = int(
            await self._bind(keys=[keys.account, keys.tombstone], args=[expected, raw_tomb or "", keys.sessions, *flat])
        )
        if result < 0:
            raise AccountChanged("the account changed concurrently; try again")
        return bound, result == 2

    async def set_devices(self, address: str, message: SignedDevices) -> tuple[DeviceList, int]:
        """Replace the account's device list from a verified, wallet-signed message (call
        :meth:`check_binding` first); an empty list removes it. Returns the list now stored and
        how many messages left the queue (those only a removed device was missing).

        404 ``no_account``; 409 ``stale_message`` when the message is not newer than the stored
        list and the account's creation, ``replayed_message`` when used, ``account_changed`` when
        the list changed concurrently. Sessions and sockets of removed devices end at once
        (``set_devices.lua`` publishes on the sessions channel).
        """
        account = await self.get(address)
        if account is None:
            raise NoAccount("there is no account for this name on this delivery service")
        current = account.devices or NO_DEVICES
        if message.timestamp <= max(account.created, current.at):
            raise StaleMessage("the message is not newer than the account's device list and creation")
        await self._use_once(address, message)
        devices = current.replaced(message.timestamp, message.devices)
        left = await self._queue.set_devices(
            address,
            expected=account.devices_stored,
            devices=devices.to_stored() if devices.devices else "",
            now=self._clock(),
        )
        self.forget_recent(address)
        if left is None:
            raise AccountChanged("the account changed concurrently; try again")
        return devices, left

    async def _tombstone_raw(self, address: str) -> str | None:
        raw = await self._redis.get(tombstone_key(self._prefix, address))
        return raw.decode() if isinstance(raw, bytes) else raw

    async def _create_if_absent(self, account: Account, tombstone_read: str | None) -> int:
        """``create_account.lua``: 1 created, 0 the account exists, -1 the tombstone changed."""
        fields = [item for pair in self._fields(account).items() for item in pair]
        keys = [account_key(self._prefix, account.address), tombstone_key(self._prefix, account.address)]
        return int(await self._create(keys=keys, args=[tombstone_read or "", *fields]))

    @staticmethod
    def _fields(account: Account) -> dict[str, str]:
        return {
            "created": str(account.created),
            "origin": account.origin,
            "settings": stringify(account.settings.to_json()),
            "profile": account.profile_hash,
            "key": account.signing_key,
            "bound": str(account.bound),
        }


_NOT_BOUND = (
    "the profile ENS publishes for this name is not the one the account is bound to; "
    "re-bind the account with a wallet-signed binding message"
)


def _parse_tombstone(raw: str | None) -> dict[str, Any] | None:
    return None if raw is None else dict(json.loads(raw))


def _tombstone_accepts(tomb: dict[str, Any], profile: SignedUserProfile) -> bool:
    """Whether ``profile`` carries the key the deleted account was bound to (a tombstone written
    before the binding existed names the profile's dm3Hash only)."""
    if tomb.get("key"):
        return bool(tomb["key"] == profile.profile.public_signing_key)
    return bool(tomb.get("profile") == profile_hash(profile))
