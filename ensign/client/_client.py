"""The SDK's client: one wallet's account on the Ensign stack.

A :class:`Client` holds a wallet, the dm3 keys derived from it, and the connections it needs: ENS
through the configured node (:mod:`ensign.ens.lookup`), HTTP to the profile backend and to the
delivery services found in ENS. Typical use::

    async with Client(Wallet.from_private_key(key), ClientConfig()) as client:
        await client.setup()                      # keys, profile, account at the delivery service
        await client.send("bob.user.ensign.eth", "hello")
        async with client.subscribe() as inbox:
            async for message in inbox:
                print(message.sender, message.text)
                await client.ack(message)

The client is an async context manager and cannot be reused: entering it a second time, or
calling it after :meth:`Client.aclose`, raises :class:`ClientStateError`. Without ``async with``
it opens on first use, and must then be closed with :meth:`Client.aclose`.
"""

from __future__ import annotations

import asyncio
import enum
import json
import secrets
import time
from dataclasses import replace
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, overload
from urllib.parse import quote

import aiohttp

from ensign.errors import EnsignError, InvalidRequest, NotFound, ServiceUnavailable
from ensign.protocol.canonical import stringify
from ensign.protocol.crypto import sign
from ensign.protocol.encoding import checksum_address
from ensign.protocol.envelope import build_envelope, envelope_id
from ensign.protocol.keys import DEFAULT_NONCE, ProfileKeys
from ensign.protocol.message import create_message
from ensign.protocol.models import (
    Attachment,
    DeliveryServiceProfile,
    EncryptionEnvelop,
    Message,
    SignedUserProfile,
    UserProfile,
)
from ensign.protocol.multi import build_multi_envelope, create_multi_message
from ensign.protocol.revocation import RevocationList, RevokedKey, revocation_message
from ensign.ens.lookup import NameLookup

from ._config import ClientConfig
from ._device import DeviceKey
from ._directory import open_directory
from ._errors import ApiError, ClientConnectionError, ClientStateError, DeliveryAttempt, DeliveryError
from ._http import JsonHttp, error_code
from ._models import (
    DeliveryAccount,
    DeviceList,
    InboxPage,
    MultiSentMessage,
    NameRegistration,
    ReceivedMessage,
    RecipientDelivery,
    RejectedEnvelope,
    SentMessage,
)
from ._push import Subscription
from ._receive import Receiver
from ._session import Sessions
from ._storage import Storage
from ._wallet import Wallet, derive_keys, sign_profile

__all__ = ["Client"]

#: Messages per page when fetching (the delivery service allows 1 … 1000).
DEFAULT_PAGE_SIZE = 100


T = TypeVar("T")


def _try_next_service(error: EnsignError) -> bool:
    """Whether a refusal means "try the receiver's next delivery service": the service failed
    (5xx, unreachable) or does not host the receiver (404: no account, hosted elsewhere)."""
    if isinstance(error, ApiError):
        return error.status >= 500 or error.status == 404 or error.code in _NEXT_SERVICE_CODES
    return isinstance(error, (ClientConnectionError, ServiceUnavailable, NotFound, InvalidRequest))


#: A receiver's refusal in a multi-recipient answer that a single send would have skipped past.
_NEXT_SERVICE_CODES = frozenset(
    {"receiver_unknown", "receiver_without_account", "receiver_elsewhere", "unavailable", "not_replicated"}
)


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class Client:
    """One wallet's dm3 account: profile, delivery-service accounts, sending and receiving.

    :param wallet: the account's :class:`Wallet` (a local key or a signing callback)
    :param config: where the chain, the backend and the delivery services are (default: ``make dev``)
    :param keys: the dm3 keys, if already derived (default: derived from ``wallet`` and ``nonce`` on
        first use)
    :param nonce: the nonce of the current keys (dm3's key-creation message; default dm3's default
        nonce). :meth:`rotate_keys` changes it: keep :attr:`nonce` and :attr:`previous_nonces`.
    :param previous_nonces: the nonces of earlier keys, newest first: messages queued before a
        rotation were encrypted to them, and the client opens them with these keys (derived from
        the wallet when first needed). Only nonces are kept, never secret keys.
    :param name: the name to send as and to log in with (default: the address name
        ``0x<address>.<config.addr_domain>``; any name resolving to the wallet's address works)
    :param lookup: an ENS lookup to use instead of one on ``config.rpc_url`` (not closed by the client)
    :param session: an ``aiohttp.ClientSession`` to use (not closed by the client)
    :param clock: seconds since the epoch, for message and account-message timestamps and for
        renewing session tokens (default ``time.time``)
    :param device: log in to delivery services as this device of the account (its own key and
        cursor, :meth:`set_devices`) instead of with the profile's signing key
    """

    def __init__(
        self,
        wallet: Wallet,
        config: ClientConfig | None = None,
        *,
        keys: ProfileKeys | None = None,
        nonce: str = DEFAULT_NONCE,
        previous_nonces: Sequence[str] = (),
        name: str | None = None,
        lookup: NameLookup | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        device: DeviceKey | None = None,
    ) -> None:
        self.wallet = wallet
        self.device = device
        self.config = config if config is not None else ClientConfig()
        self.name = name if name is not None else f"{wallet.address.lower()}.{self.config.addr_domain}"
        self._keys = keys
        self.nonce = nonce
        self.previous_nonces: list[str] = list(previous_nonces)
        self._previous_keys: dict[str, ProfileKeys] = {}
        self._keys_lock = asyncio.Lock()
        self._profiles: dict[tuple[str, ...], SignedUserProfile] = {}
        self._lookup = lookup
        self._own_lookup = lookup is None
        self._session = session
        self._own_session = session is None
        self._http: JsonHttp | None = None
        self._clock = clock
        self._state = _State.UNOPENED
        self._sessions = Sessions(self._login, clock)
        # The backend's storage logs in like a delivery service, with its own token.
        self._storage_sessions = Sessions(self._storage_login, clock)
        self._storage: Storage | None = None
        self._subscriptions: set[Subscription] = set()
        self._receiver_cache: Receiver | None = None

    # -- lifetime -------------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        if self._state is _State.OPENED:
            raise ClientStateError("this client is already open; a client is entered once")
        if self._state is _State.CLOSED:
            raise ClientStateError("this client is closed and cannot be reopened; make a new Client")
        await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _open(self) -> JsonHttp:
        if self._state is _State.CLOSED:
            raise ClientStateError("this client is closed; make a new Client")
        if self._http is None:
            self._state = _State.OPENED
            if self._session is None:
                self._session = aiohttp.ClientSession()
            self._http = JsonHttp(self._session, self.config.timeout)
        return self._http

    async def aclose(self) -> None:
        """Stop every subscription and close what the client opened. Closing twice is harmless."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._own_lookup and self._lookup is not None:
            await self._lookup.close()
        if self._own_session and self._session is not None:
            await self._session.close()
        self._http = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has run."""
        return self._state is _State.CLOSED

    async def _directory(self) -> NameLookup:
        await self._open()
        if self._lookup is None:
            self._lookup = await open_directory(self.config)
        return self._lookup

    # -- identity -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The wallet's EIP-55 address."""
        return self.wallet.address

    async def keys(self) -> ProfileKeys:
        """The account's dm3 keys; derived on first use (the wallet signs dm3's key-creation message)."""
        self._check_open()
        async with self._keys_lock:
            if self._keys is None:
                self._keys = await derive_keys(self.wallet, self.nonce)
        return self._keys

    async def previous_keys(self) -> list[ProfileKeys]:
        """The keys of :attr:`previous_nonces`, newest first (each derived once from the wallet)."""
        self._check_open()
        async with self._keys_lock:
            for nonce in self.previous_nonces:
                if nonce not in self._previous_keys:
                    self._previous_keys[nonce] = await derive_keys(self.wallet, nonce)
        return [self._previous_keys[nonce] for nonce in self.previous_nonces]

    async def rotate_keys(
        self, nonce: str | None = None, delivery_services: Sequence[str] | None = None, *, revoke: bool = False
    ) -> NameRegistration:
        """Replace the profile's keys everywhere at once (``specs/delivery.md`` §2.6).

        Derives new keys from the wallet with a new ``nonce`` (default: a random one), publishes
        the profile carrying them through the backend (the gateway then answers with it), and
        binds the account at each of the profile's delivery services to the new signing key with a
        wallet-signed binding message: sessions and sockets of the old key end there at once (a
        device listed with the old signing key, such as :meth:`add_device`'s ``profile``, is listed
        with the new one, by a wallet-signed list). The
        old keys stay in :attr:`previous_nonces` (newest first) so queued messages encrypted to
        them still open; persist :attr:`nonce` and :attr:`previous_nonces` to keep reading them
        in a later process.

        This is also how a user recovers after losing every profile key (or the nonce they came
        from): a client built from the wallet alone calls it, and the account works again with new
        keys, while whoever holds the lost ones can no longer log in. Messages encrypted to keys
        that were lost cannot be opened; fetching hands them out as rejected envelopes
        (:class:`RejectedEnvelope`), which :meth:`ack` drops. ``ensign recover`` does this on the command line.

        With ``revoke=True`` the signing key of the profile published until now is then revoked
        (:meth:`revoke_keys`): whoever kept it cannot send as this address any more, under any name.

        :raises ApiError: as the backend or a delivery service answered (the keys have changed
            by then; calling again with the same ``nonce`` finishes the rotation)
        """
        services = tuple(delivery_services) if delivery_services is not None else self.config.delivery_services
        new_nonce = nonce if nonce is not None else secrets.token_hex(32)
        old_keys, old_nonce = await self.keys(), self.nonce
        # The key of the profile the backend publishes until now (this client's own old key may be
        # one that was never published, e.g. dm3's default nonce in a recovery: not revoked).
        to_revoke = await self._published_signing_key() if revoke else []
        # Read while the old key still logs in: a device listed with it moves to the new key.
        listed = {service: await self._devices_or_none(service) for service in services}
        if new_nonce != old_nonce:
            new_keys = await derive_keys(self.wallet, new_nonce)
            async with self._keys_lock:
                self._keys, self.nonce = new_keys, new_nonce
                self._previous_keys[old_nonce] = old_keys
                self.previous_nonces = [old_nonce, *(n for n in self.previous_nonces if n not in (old_nonce, new_nonce))]
                self._profiles.clear()
                self._receiver_cache = None
        registration = await self.publish_profile(services)
        new_key = (await self.keys()).signing.public_key
        for service in services:
            await self._bind(service)
            devices = listed[service]
            if devices and old_keys.signing.public_key in devices.values() and new_key != old_keys.signing.public_key:
                moved = {i: new_key if key == old_keys.signing.public_key else key for i, key in devices.items()}
                await self.set_devices(moved, service)
        if any(key != new_key for key in to_revoke):
            await self.revoke_keys(*(key for key in to_revoke if key != new_key))
        return registration

    async def _published_signing_key(self) -> list[str]:
        """The signing key of the profile the backend holds for this address (none: ``[]``)."""
        try:
            answer = await self._backend("GET", f"/profile/{self.address}", None)
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return [SignedUserProfile.from_json(answer).profile.public_signing_key]

    async def revocations(self) -> RevocationList | None:
        """The wallet's published list of revoked signing keys (``None`` when it revoked none)."""
        try:
            answer = await self._backend("GET", f"/revocations/{self.address}", None)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return RevocationList.from_json(answer)

    async def revoke_keys(self, *public_signing_keys: str, revoked_at: int | None = None) -> RevocationList:
        """Revoke profile signing keys of this wallet (``specs/protocol.md``, "Revoked keys").

        Adds each key, with ``revoked_at`` (ms; default now), to the wallet's list, which the
        wallet signs, and publishes it through the backend: from then on the gateway answers it on
        every name of the address, delivery services refuse envelopes signed with those keys, and
        receivers reject messages signed with them that were received after ``revoked_at``. Keys
        already listed keep their time; a revocation cannot be taken back.

        :raises ApiError: as the backend answered (e.g. 404 when the address has no profile yet)
        """
        at = revoked_at if revoked_at is not None else self._now_ms()
        current = await self.revocations()
        entries = list(current.revoked) if current is not None else []
        listed = {entry.public_signing_key for entry in entries}
        entries += [RevokedKey(key, at) for key in dict.fromkeys(public_signing_keys) if key not in listed]
        signature = await self.wallet.sign_checked(revocation_message(self.address, entries))
        revocations = RevocationList(address=checksum_address(self.address), revoked=tuple(entries), signature=signature)
        await self._backend("POST", f"/revocations/{self.address}", revocations.to_json())
        lookup = await self._directory()
        lookup.forget(self.name)
        lookup.forget(f"{self.address.lower()}.{self.config.addr_domain}")
        return revocations

    async def _devices_or_none(self, service: str) -> dict[str, str] | None:
        """The device list at ``service`` (id → key), or ``None`` when it cannot be read now."""
        try:
            return {d.id: d.public_signing_key for d in (await self.devices(service)).devices}
        except (ApiError, ClientConnectionError, ServiceUnavailable, NotFound):
            return None

    async def _bind(self, service: str) -> DeliveryAccount:
        """Bind the account at ``service`` to the current signing key (wallet-signed, EIP-191)."""
        profile = await self._delivery_service_profile(service)
        keys = await self.keys()
        message = {
            "deliveryService": profile.url,
            "ensName": self.name,
            "timestamp": self._now_ms(),
            "topic": "bindProfile",
            "publicSigningKey": keys.signing.public_key,
        }
        body = {"message": message, "signature": await self.wallet.sign_checked(stringify(message))}
        http = await self._open()
        url = f"{profile.url.rstrip('/')}/account/{quote(self.name, safe='')}/binding"
        answer, _ = await http.request("POST", url, json_body=body)
        self._sessions.forget(service)
        return DeliveryAccount.from_json(service, answer)

    async def signed_profile(self, delivery_services: Sequence[str] | None = None) -> SignedUserProfile:
        """The profile listing ``delivery_services`` (default ``config.delivery_services``), signed by the wallet."""
        services = tuple(delivery_services) if delivery_services is not None else self.config.delivery_services
        if not services or isinstance(delivery_services, str):
            raise InvalidRequest("a profile lists at least one delivery service, as a sequence of ENS names")
        if services not in self._profiles:
            keys = await self.keys()
            profile = UserProfile(
                public_encryption_key=keys.encryption.public_key,
                public_signing_key=keys.signing.public_key,
                delivery_services=services,
            )
            self._profiles[services] = await sign_profile(self.wallet, profile)
        return self._profiles[services]

    # -- profile and names (backend) --------------------------------------------------------------

    async def publish_profile(self, delivery_services: Sequence[str] | None = None) -> NameRegistration:
        """Publish the signed profile through the backend; its address name then resolves in ENS.

        :param delivery_services: ENS names of the delivery services to list, primary first
            (default ``config.delivery_services``)
        :raises ApiError: e.g. 409 ``profile_superseded`` for a profile this address replaced before
        """
        signed = await self.signed_profile(delivery_services)
        body = {"signedUserProfile": signed.to_json(), "address": self.address, "subdomain": self.config.addr_domain}
        answer = await self._backend("POST", "/profile/address", body)
        lookup = await self._directory()
        lookup.forget(self.name)
        lookup.forget(str(answer["name"]))
        return NameRegistration(name=str(answer["name"]), address=str(answer["address"]), status=str(answer["status"]))

    async def claim_alias(self, alias: str) -> NameRegistration:
        """Claim ``alias`` (e.g. ``alice.user.ensign.eth``) for this address at the backend.

        Signed with the profile's key in the backend's timestamped form (``specs/backend.md``), so
        the request cannot be replayed. The profile must be published first.
        """
        keys = await self.keys()
        timestamp = self._now_ms()
        address_name = f"{self.address.lower()}.{self.config.addr_domain}"
        text = f"Ensign alias claim\nName: {alias}\nAddress name: {address_name}\nTimestamp: {timestamp}"
        body = {
            "signature": sign(keys.signing.secret_key, text),
            "addressName": address_name,
            "dm3Name": alias,
            "timestamp": timestamp,
        }
        answer = await self._backend("POST", "/profile/name", body)
        (await self._directory()).forget(str(answer["name"]))
        return NameRegistration(name=str(answer["name"]), address=str(answer["address"]), status=str(answer["status"]))

    async def _backend(self, method: str, path: str, body: Any) -> dict[str, Any]:
        http = await self._open()
        answer, _ = await http.request(method, self.config.backend_url.rstrip("/") + path, json_body=body)
        if not isinstance(answer, dict):
            raise ApiError(200, "invalid_response", answer, "the backend answered with something other than an object")
        return answer

    # -- the user's own storage (backend) ---------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The account's encrypted storage at the backend: documents with signed history, grants.

        The profile must be published (:meth:`publish_profile` or :meth:`setup`) first.
        """
        if self._storage is None:
            self._storage = Storage(self, self._storage_request, self._storage_stream)
        return self._storage

    async def _storage_login(self, service: str) -> str:
        """The same login as at a delivery service, at the backend (``specs/storage.md``)."""
        return await self._challenge_login(self.config.backend_url)

    async def _storage_request(
        self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        http = await self._open()
        url = self.config.backend_url.rstrip("/") + path

        async def request(token: str) -> Any:
            answer, _ = await http.request(
                method, url, json_body=json_body, params=params, headers={"Authorization": f"Bearer {token}"}
            )
            return answer

        return await self._storage_sessions.call("backend", request)

    async def _storage_stream(
        self,
        method: str,
        path: str,
        consume: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        *,
        body: Callable[[], AsyncIterator[bytes]] | None = None,
    ) -> T:
        """A streamed request to the backend with the storage session: ``body()`` makes the upload
        (called again for the retry after a 401), ``consume`` reads a 2xx answer as it arrives."""
        await self._open()
        assert self._session is not None
        session = self._session
        url = self.config.backend_url.rstrip("/") + path

        async def request(token: str) -> T:
            headers = {"Authorization": f"Bearer {token}"}
            try:
                async with session.request(
                    method, url, data=None if body is None else body(), headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=self.config.timeout),
                ) as response:
                    if not 200 <= response.status < 300:
                        raw = await response.read()
                        try:
                            answer = json.loads(raw) if raw else None
                        except ValueError:
                            answer = None
                        raise ApiError(response.status, error_code(response.status, answer), answer, url=url)
                    return await consume(response)
            except aiohttp.ClientError as exc:
                raise ClientConnectionError(f"{url} failed during a streamed request ({type(exc).__name__})") from exc

        return await self._storage_sessions.call("backend", request)

    # -- delivery-service accounts ---------------------------------------------------------------

    def _service(self, delivery_service: str | None) -> str:
        return delivery_service if delivery_service is not None else self.config.delivery_services[0]

    async def delivery_service_profile(self, delivery_service: str | None = None) -> DeliveryServiceProfile:
        """The ENS profile (URL and public keys) of a delivery service (default: the first configured)."""
        return await self._delivery_service_profile(self._service(delivery_service))

    async def _delivery_service_profile(self, name: str) -> DeliveryServiceProfile:
        return await (await self._directory()).delivery_service_profile(name)

    async def _account_message(self, delivery_service: str, topic: str, settings: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
        profile = await self._delivery_service_profile(delivery_service)
        keys = await self.keys()
        message: dict[str, Any] = {
            "deliveryService": profile.url,
            "ensName": self.name,
            "timestamp": self._now_ms(),
            "topic": topic,
        }
        if settings is not None:
            message["settings"] = dict(settings)
        return profile.url, {"message": message, "signature": sign(keys.signing.secret_key, stringify(message))}

    async def create_account(
        self, delivery_service: str | None = None, *, settings: Mapping[str, Any] | None = None
    ) -> DeliveryAccount:
        """Create this address's account at a delivery service with a signed ``createAccount`` message.

        :param delivery_service: its ENS name (default: the first of ``config.delivery_services``)
        :param settings: optional account settings (``specs/delivery.md`` §2.4)
        :raises ApiError: 409 ``account_exists``; 404 ``no_profile`` when the profile is not published
        """
        service = self._service(delivery_service)
        url, body = await self._account_message(service, "createAccount", settings)
        http = await self._open()
        answer, _ = await http.request("POST", f"{url.rstrip('/')}/account/{quote(self.name, safe='')}", json_body=body)
        return DeliveryAccount.from_json(service, answer)

    async def delete_account(self, delivery_service: str | None = None) -> int:
        """Delete the account at a delivery service (signed ``deleteAccount``); returns how many
        queued messages were dropped with it."""
        service = self._service(delivery_service)
        url, body = await self._account_message(service, "deleteAccount", None)
        http = await self._open()
        answer, _ = await http.request("DELETE", f"{url.rstrip('/')}/account/{quote(self.name, safe='')}", json_body=body)
        self._sessions.forget(service)
        return int(answer["droppedMessages"])

    async def account(self, delivery_service: str | None = None) -> DeliveryAccount:
        """The account at a delivery service, with its settings (needs a session)."""
        service = self._service(delivery_service)
        answer, _ = await self._authorized(service, "GET", f"/account/{quote(self.name, safe='')}")
        return DeliveryAccount.from_json(service, answer)

    async def update_settings(
        self, settings: Mapping[str, Any], delivery_service: str | None = None
    ) -> DeliveryAccount:
        """Replace the account's settings at a delivery service (session; ``specs/delivery.md`` §2.4):
        ``maxMessageSize``, ``messageTTL`` (seconds), ``spamFilterRules``, ``notifications``."""
        service = self._service(delivery_service)
        answer, _ = await self._authorized(
            service, "PUT", f"/account/{quote(self.name, safe='')}/settings", json_body=dict(settings)
        )
        return DeliveryAccount.from_json(service, answer)

    async def setup(self, delivery_services: Sequence[str] | None = None) -> NameRegistration:
        """Everything a new account needs, safe to repeat: derive the keys, publish the profile,
        and create an account at each of its delivery services (an existing one is kept).

        A service that cannot be reached is skipped with its error raised at the end, after the
        others were set up.
        """
        services = tuple(delivery_services) if delivery_services is not None else self.config.delivery_services
        registration = await self.publish_profile(services)
        failure: EnsignError | None = None
        for service in services:
            try:
                await self.create_account(service)
            except ApiError as exc:
                if exc.code != "account_exists":
                    raise
            except (ClientConnectionError, ServiceUnavailable) as exc:
                failure = exc
        if failure is not None:
            raise failure
        return registration

    # -- devices --------------------------------------------------------------------------------

    async def devices(self, delivery_service: str | None = None) -> DeviceList:
        """The account's device list at a delivery service (needs a session; empty without a list)."""
        service = self._service(delivery_service)
        answer, _ = await self._authorized(service, "GET", f"/account/{quote(self.name, safe='')}/devices")
        return DeviceList.from_json(service, answer)

    async def set_devices(
        self, devices: Mapping[str, str], delivery_service: str | None = None
    ) -> DeviceList:
        """Replace the account's device list at a delivery service with ``devices`` (id → public
        signing key, base64), signed by the wallet (``specs/delivery.md`` §2.7); ``{}`` removes it.

        Each listed device logs in with its own key and acknowledges for itself: a message leaves the
        queue once every listed device acknowledged it (or its TTL ends). Once a list exists, the
        profile's key logs in only if a device carries it, so list it to keep a dm3 client
        (:meth:`add_device` does). A removed device's sessions and sockets end at once.

        :raises ApiError: 400 ``invalid_message`` (over 16 devices, a bad id or key, a key twice),
            409 ``stale_message`` / ``replayed_message`` / ``account_changed``
        """
        service = self._service(delivery_service)
        profile = await self._delivery_service_profile(service)
        message = {
            "deliveryService": profile.url,
            "ensName": self.name,
            "timestamp": self._now_ms(),
            "topic": "setDevices",
            "devices": [{"id": i, "publicSigningKey": key} for i, key in devices.items()],
        }
        body = {"message": message, "signature": await self.wallet.sign_checked(stringify(message))}
        http = await self._open()
        url = f"{profile.url.rstrip('/')}/account/{quote(self.name, safe='')}/devices"
        answer, _ = await http.request("PUT", url, json_body=body)
        # A session made before the list (or of a removed device) has ended; log in afresh.
        self._sessions.forget(service)
        return DeviceList.from_json(service, answer)

    async def _current_devices(self, service: str) -> dict[str, str]:
        try:
            listed = await self.devices(service)
        except ApiError as exc:
            if exc.code != "device_not_listed" or self.device is None:
                raise
            # This device was removed: read the list with the profile's key (listed or no list).
            profile = await self._delivery_service_profile(service)
            token = await self._challenge_login(profile.url, as_device=False)
            http = await self._open()
            url = f"{profile.url.rstrip('/')}/account/{quote(self.name, safe='')}/devices"
            answer, _ = await http.request("GET", url, headers={"Authorization": f"Bearer {token}"})
            listed = DeviceList.from_json(service, answer)
        return {d.id: d.public_signing_key for d in listed.devices}

    async def add_device(
        self, device_id: str, public_signing_key: str, delivery_service: str | None = None
    ) -> DeviceList:
        """Add (or re-key) one device on the account's list, signed by the wallet. The first device
        added starts the list with the profile's signing key as device ``profile``, so the profile
        key (and dm3 clients using it) keeps logging in; remove it to stop that."""
        service = self._service(delivery_service)
        current = await self._current_devices(service)
        if not current:
            profile_key = (await self.keys()).signing.public_key
            if profile_key != public_signing_key:
                current["profile"] = profile_key
        current[device_id] = public_signing_key
        return await self.set_devices(current, service)

    async def remove_device(self, device_id: str, delivery_service: str | None = None) -> DeviceList:
        """Remove one device from the account's list, signed by the wallet: its sessions and
        sockets end at once, and messages only it had not acknowledged leave the queue."""
        service = self._service(delivery_service)
        current = await self._current_devices(service)
        if device_id not in current:
            raise InvalidRequest(f"the account's device list at {service} holds no device {device_id!r}")
        del current[device_id]
        return await self.set_devices(current, service)

    # -- sessions -------------------------------------------------------------------------------

    async def login(self, delivery_service: str | None = None) -> str:
        """A session token for a delivery service, logging in only if the current one is missing
        or about to expire. Requests call this themselves; it is public for socket.io clients of
        your own."""
        return await self._sessions.token(self._service(delivery_service))

    async def _login(self, service: str) -> str:
        """Challenge → signature with the profile key → session token (``specs/delivery.md`` §3)."""
        profile = await self._delivery_service_profile(service)
        return await self._challenge_login(profile.url)

    async def _challenge_login(self, base_url: str, *, as_device: bool = True) -> str:
        """Log in with the profile's signing key, or as :attr:`device` (``as_device``, when set)."""
        device = self.device if as_device else None
        secret_key = device.signing.secret_key if device is not None else (await self.keys()).signing.secret_key
        http = await self._open()
        url = f"{base_url.rstrip('/')}/auth/{quote(self.name, safe='')}"
        challenge, _ = await http.request("GET", url)
        if not isinstance(challenge, str):
            raise ApiError(200, "invalid_response", challenge, "the challenge is not a string", url=url)
        body = {"challenge": challenge, "signature": sign(secret_key, challenge)}
        if device is not None:
            body["device"] = device.id
        token, _ = await http.request("POST", url, json_body=body)
        if not isinstance(token, str):
            raise ApiError(200, "invalid_response", None, "the session token is not a string", url=url)
        return token

    async def _authorized(
        self, service: str, method: str, path: str, *, json_body: Any = None, params: Mapping[str, str] | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        profile = await self._delivery_service_profile(service)
        http = await self._open()
        url = profile.url.rstrip("/") + path

        async def request(token: str) -> tuple[Any, Mapping[str, str]]:
            return await http.request(
                method, url, json_body=json_body, params=params, headers={"Authorization": f"Bearer {token}"}
            )

        return await self._sessions.call(service, request)

    # -- sending --------------------------------------------------------------------------------

    @overload
    async def send(  # type: ignore[overload-overlap]  # a str is a Sequence[str]; this one wins
        self,
        to: str,
        text: str | None,
        *,
        type: str = "NEW",
        reference_message_hash: str | None = None,
        attachments: Iterable[Attachment] | None = None,
    ) -> SentMessage: ...

    @overload
    async def send(
        self,
        to: Sequence[str],
        text: str | None,
        *,
        type: str = "NEW",
        reference_message_hash: str | None = None,
        attachments: Iterable[Attachment] | None = None,
    ) -> MultiSentMessage: ...

    async def send(
        self,
        to: str | Sequence[str],
        text: str | None,
        *,
        type: str = "NEW",
        reference_message_hash: str | None = None,
        attachments: Iterable[Attachment] | None = None,
    ) -> SentMessage | MultiSentMessage:
        """Sign, encrypt and deliver a message to ``to``: one ENS name with a dm3 profile, or a
        list of them.

        To one name: the receiver's profile comes from ENS; its delivery services are tried in the
        profile's order. A service that cannot be found in ENS or reached, that fails (5xx), or
        that has no account for the receiver (404) is skipped for the next one; any other refusal
        (spam rules, size, …) ends the attempt.

        To a list (at most the services' ``MAX_RECIPIENTS``, 100 by default): the message is signed
        once, listing every receiver (each receiver sees the whole list), and encrypted once; each
        receiver's delivery service gets one ``ensign-multi-v1`` envelope with the key wrapped to
        each of its receivers (``specs/protocol.md`` §1.15). Receivers refused as a single send
        would be skipped move on to the next service of their profile. A service that does not
        know multi-recipient envelopes (a dm3 service) gets one ordinary envelope per receiver.
        Nothing is raised for one receiver: see each :class:`RecipientDelivery`.

        :param type: dm3's message type (``"NEW"``, ``"REPLY"``, ``"REACTION"``, …)
        :param reference_message_hash: the message a reply, edit or reaction refers to
        :raises DeliveryError: (one name) no service took the message; ``attempts`` says why for each
        :raises NotFound: (one name) ``to`` has no dm3 profile in ENS
        """
        options: dict[str, Any] = {
            "type": type,
            "reference_message_hash": reference_message_hash,
            "attachments": None if attachments is None else tuple(attachments),
        }
        if not isinstance(to, str):
            return await self._send_multi(list(to), text, options)
        lookup = await self._directory()
        receiver = (await lookup.user_profile(to)).signed_profile.profile
        keys = await self.keys()
        message = create_message(to, self.name, text, keys.signing.secret_key, timestamp=self._now_ms(), **options)
        attempts: list[DeliveryAttempt] = []
        for service in receiver.delivery_services:
            try:
                envelope = await self._submit_single(service, message, receiver.public_encryption_key)
            except (ClientConnectionError, ServiceUnavailable, NotFound, InvalidRequest) as exc:
                attempts.append(DeliveryAttempt(service, exc))
                continue
            except ApiError as exc:
                attempts.append(DeliveryAttempt(service, exc))
                if _try_next_service(exc):
                    continue
                raise DeliveryError(to, attempts) from exc
            return SentMessage(
                id=envelope_id(envelope),
                receiver=to,
                delivery_service=service,
                message=message,
                failed_attempts=tuple(attempts),
            )
        error = DeliveryError(to, attempts)
        raise error from attempts[-1].error if attempts else None

    async def _submit_single(self, service: str, message: Message, receiver_key: str) -> EncryptionEnvelop:
        """``dm3_submitMessage`` of ``message`` to ``service``; the envelope it took."""
        profile = await self._delivery_service_profile(service)
        keys = await self.keys()
        # deliveryInformation is encrypted to each service: one envelope per attempt.
        envelope = build_envelope(message, keys.signing.secret_key, receiver_key, profile.public_encryption_key)
        request = {"jsonrpc": "2.0", "id": 1, "method": "dm3_submitMessage", "params": [json.dumps(envelope.to_json())]}
        http = await self._open()
        await http.request("POST", profile.url.rstrip("/") + "/rpc", json_body=request)
        return envelope

    async def _send_multi(self, names: list[str], text: str | None, options: Mapping[str, Any]) -> MultiSentMessage:
        if not names:
            raise InvalidRequest("send to a list needs at least one name")
        lookup = await self._directory()
        keys = await self.keys()
        message = create_multi_message(names, self.name, text, keys.signing.secret_key, timestamp=self._now_ms(), **options)
        profiles: dict[str, UserProfile] = {}
        outcomes: dict[str, RecipientDelivery] = {}
        for name in names:
            try:
                profiles[name] = (await lookup.user_profile(name)).signed_profile.profile
            except (NotFound, InvalidRequest, ServiceUnavailable) as exc:
                outcomes[name] = RecipientDelivery(name, "refused", None, error=exc)
        attempts: dict[str, list[DeliveryAttempt]] = {name: [] for name in profiles}
        pending = list(profiles)
        # Round n sends each pending receiver to the n-th service of its profile, grouped by service.
        for round_ in range(max((len(p.delivery_services) for p in profiles.values()), default=0)):
            groups: dict[str, list[str]] = {}
            for name in pending:
                services = profiles[name].delivery_services
                if round_ < len(services):
                    groups.setdefault(services[round_], []).append(name)
            pending = []
            for service, group in groups.items():
                results = await self._submit_multi(service, message, {n: profiles[n].public_encryption_key for n in group})
                for name, outcome in results.items():
                    earlier = tuple(attempts[name])
                    if outcome.error is not None and _try_next_service(outcome.error):
                        # Stands unless the receiver's next service takes it in the next round.
                        attempts[name].append(DeliveryAttempt(service, outcome.error))
                        pending.append(name)
                    outcomes[name] = replace(outcome, failed_attempts=earlier)
        return MultiSentMessage(message=message, recipients=tuple(outcomes[name] for name in names))

    async def _submit_multi(self, service: str, message: Message, receivers: Mapping[str, str]) -> dict[str, RecipientDelivery]:
        """``ensign_submitMultiMessage`` of ``message`` for ``receivers`` (name → encryption key)
        at ``service``: each receiver's outcome. A service without the method gets single envelopes."""
        try:
            profile = await self._delivery_service_profile(service)
            keys = await self.keys()
            envelope = build_multi_envelope(message, keys.signing.secret_key, receivers, profile.public_encryption_key)
            request = {"jsonrpc": "2.0", "id": 1, "method": "ensign_submitMultiMessage", "params": [envelope.to_json()]}
            url = profile.url.rstrip("/") + "/rpc"
            http = await self._open()
            answer, _ = await http.request("POST", url, json_body=request)
        except ApiError as exc:
            if exc.code == "method_not_found":
                return {name: await self._submit_one_of_many(service, message, name, key) for name, key in receivers.items()}
            return {name: RecipientDelivery(name, "refused", service, error=exc) for name in receivers}
        except (ClientConnectionError, ServiceUnavailable, NotFound, InvalidRequest) as exc:
            return {name: RecipientDelivery(name, "refused", service, error=exc) for name in receivers}
        result = answer.get("result") if isinstance(answer, dict) else None
        entries = result.get("recipients") if isinstance(result, dict) else None
        if not isinstance(entries, list) or len(entries) != len(receivers):
            error = ApiError(200, "invalid_response", answer, "the service did not answer one outcome per receiver", url=url)
            return {name: RecipientDelivery(name, "refused", service, error=error) for name in receivers}
        outcomes: dict[str, RecipientDelivery] = {}
        for name, entry in zip(receivers, entries):
            status = entry.get("status") if isinstance(entry, dict) else None
            failure = entry.get("error") if isinstance(entry, dict) else None
            if status in ("stored", "duplicate", "forwarded"):
                outcomes[name] = RecipientDelivery(name, str(status), service, id=envelope.encrypted_message_hash)
            else:
                code = str(failure.get("code", "invalid_response")) if isinstance(failure, dict) else "invalid_response"
                text = str(failure.get("message", "")) if isinstance(failure, dict) else None
                outcomes[name] = RecipientDelivery(name, "refused", service, error=ApiError(200, code, entry, text, url=url))
        return outcomes

    async def _submit_one_of_many(self, service: str, message: Message, name: str, key: str) -> RecipientDelivery:
        """A receiver of a multi-recipient message at a service that takes only dm3 envelopes: a
        message of its own (signed for it alone) in an ordinary envelope."""
        keys = await self.keys()
        meta = message.metadata
        single = create_message(
            name, meta.from_, message.message, keys.signing.secret_key, type=meta.type, timestamp=meta.timestamp,
            reference_message_hash=meta.reference_message_hash, attachments=message.attachments,
        )
        try:
            envelope = await self._submit_single(service, single, key)
        except (ClientConnectionError, ServiceUnavailable, NotFound, InvalidRequest) as exc:
            return RecipientDelivery(name, "refused", service, error=exc)
        return RecipientDelivery(name, "stored", service, id=envelope_id(envelope))

    # -- receiving ------------------------------------------------------------------------------

    async def _receiver(self) -> Receiver:
        if self._receiver_cache is None:
            keys = await self.keys()
            self._receiver_cache = Receiver(
                keys, self.name, self.address, await self._directory(), previous=await self.previous_keys()
            )
        return self._receiver_cache

    async def _fetch_raw(
        self, service: str, *, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> tuple[list[Any], str | None]:
        params = {"limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        answer, headers = await self._authorized(
            service, "GET", f"/delivery/messages/incoming/{quote(self.name, safe='')}", params=params
        )
        if not isinstance(answer, list):
            raise ApiError(200, "invalid_response", answer, "the inbox is not a JSON array")
        return answer, headers.get("X-Next-Cursor") or None

    async def fetch(
        self, delivery_service: str | None = None, *, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> InboxPage:
        """One page of the inbox at a delivery service, oldest first, each message verified.

        Fetching removes nothing: acknowledge with :meth:`ack`. Pass the page's ``next_cursor`` to
        get the next page.

        :param limit: messages per page, 1 … 1000 (default 100)
        """
        service = self._service(delivery_service)
        envelopes, next_cursor = await self._fetch_raw(service, cursor=cursor, limit=limit)
        profile = await self._delivery_service_profile(service)
        receiver = await self._receiver()
        messages: list[ReceivedMessage] = []
        rejected: list[RejectedEnvelope] = []
        for raw in envelopes:
            result = await receiver.open(raw, service, profile)
            (messages if isinstance(result, ReceivedMessage) else rejected).append(result)  # type: ignore[arg-type]
        return InboxPage(messages=tuple(messages), rejected=tuple(rejected), next_cursor=next_cursor)

    async def pages(
        self, delivery_service: str | None = None, *, limit: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[InboxPage]:
        """Every page of the inbox, following the cursor to the last page."""
        cursor: str | None = None
        while True:
            page = await self.fetch(delivery_service, cursor=cursor, limit=limit)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def subscribe(self, delivery_service: str | None = None, *, catch_up: bool = True) -> Subscription:
        """Messages pushed over socket.io by a delivery service, reconnecting as needed.

        Use as ``async with client.subscribe() as messages: async for message in messages: …``.
        With ``catch_up`` (default) each (re)connection first fetches what is queued, so nothing
        sent while no socket was open is missed.
        """
        self._check_open()
        subscription = Subscription(self, self._service(delivery_service), catch_up=catch_up)
        self._subscriptions.add(subscription)
        return subscription

    def _subscription_closed(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def ack(
        self, *messages: ReceivedMessage | RejectedEnvelope | str, delivery_service: str | None = None
    ) -> int:
        """Acknowledge messages, which removes them from their delivery service; returns how many
        were removed (an already acknowledged one counts 0). On an account with a device list the
        acknowledgement is this client's device's: the message leaves once every listed device
        acknowledged it, and the count is of the messages this device acknowledged now.

        Messages and rejected envelopes are acknowledged at the service they came from; a bare
        envelope id at ``delivery_service`` (default: the first configured).
        """
        by_service: dict[str, list[dict[str, str]]] = {}
        for item in messages:
            if isinstance(item, ReceivedMessage):
                service, entry = item.delivery_service, {"contactAddress": item.sender, "messageHash": item.id}
            elif isinstance(item, RejectedEnvelope):
                if item.id is None:
                    continue
                service, entry = item.delivery_service, {"contactAddress": "", "messageHash": item.id}
            elif isinstance(item, str):
                service, entry = self._service(delivery_service), {"contactAddress": "", "messageHash": item}
            else:
                raise InvalidRequest(f"cannot acknowledge a {type(item).__name__}")
            by_service.setdefault(service, []).append(entry)
        removed = 0
        for service, entries in by_service.items():
            answer, _ = await self._authorized(
                service,
                "POST",
                f"/delivery/messages/{quote(self.name, safe='')}/syncAcknowledgements/",
                json_body={"acknowledgements": entries},
            )
            removed += int(answer["acknowledged"])
        return removed

    # -- helpers --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClientStateError("this client is closed; make a new Client")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def __repr__(self) -> str:
        return f"Client(name={self.name!r}, state={self._state.name.lower()})"
