"""The read side of ENS for every Ensign service: name → address, user profile, DS profile.

Every read is the Universal Resolver call web3.py 8's :class:`ens.AsyncENS` makes
(``resolve(dnsName, recordCall)`` at ``0xeEeE…EeEe``, ENSIP-10 wildcards, EIP-3668 CCIP-Read by
web3 itself): what a dm3 client does, so a name that works here works for them. The lookup makes
that call itself rather than through ``AsyncENS.address``/``get_text`` only to keep the revert
data, which separates "no record" from "the gateway is down" (see :meth:`NameLookup._resolve_record`).
A user profile needs two records (``network.dm3.profile`` and ``addr``): both come from one
Universal Resolver call whose record call is ``multicall(bytes[])``, ENS's way of asking for
several records at once, so a cold profile costs one ``eth_call``, one batch-gateway round trip
and one callback ``eth_call`` (two of each when the records were asked for one at a time).

What each call returns and raises (all errors from :mod:`ensign.errors`):

=============================  ================================  ===========================================
call                           returns                           raises
=============================  ================================  ===========================================
``address(name)``              EIP-55 address of ``addr``         ``NotFound``: no resolver, no or zero addr
``user_profile(name)``         :class:`ResolvedUserProfile`       ``NotFound``: no ``network.dm3.profile``;
                                                                  ``InvalidRequest``: present but invalid
``delivery_service_profile``   ``DeliveryServiceProfile``         as ``user_profile``, for
                                                                  ``network.dm3.deliveryService``
``delivery_service_signing``   the DS's postmark keys             as ``delivery_service_profile``
``_keys(name)``                (profile's, then the record's)
=============================  ================================  ===========================================

Every call also raises ``InvalidRequest`` for a name that cannot be normalised and
``ServiceUnavailable`` when the node, the gateway or a linked profile's host cannot be reached.

Validation of a user profile (``network.dm3.profile``):

1. the record is parsed by :func:`ensign.protocol.profile.parse_profile_record`: a ``data:`` URI,
   raw JSON, or an ``http(s)`` link carrying ``dm3Hash``;
2. a link is fetched (no redirects, bounded size and time) and must hash to its ``dm3Hash``;
3. the result must be a well-formed ``SignedUserProfile``;
4. the name must have an ``addr`` record, and the profile's EIP-191 signature must be that
   address's: recovering to it, or accepted by it as a contract wallet (EIP-1271,
   :mod:`ensign.ens.wallets`, asked through the same node).
5. the address's revoked signing keys (:mod:`ensign.protocol.revocation`) are read from the
   ``eth.ensign.revokedKeys`` record of the name itself and of the address's own name
   ``0x<address>.<domain>`` under each of ``revocation_domains`` (a name someone else made for the
   address cannot drop the owner's list); lists that do not verify against the address are
   ignored, the others merged into :attr:`ResolvedUserProfile.revoked`. The caller judges a
   signature by the time it was made (:func:`ensign.protocol.revocation.check_not_revoked`).

A delivery-service profile has no signature; it is trusted because it sits in ENS. It may be a
``data:`` URI, raw JSON (what dm3's installers publish) or a link (hash-checked like a user's).
``ipfs://`` links are fetched from dm3's IPFS gateway; their CID is their integrity check.

Caching (:mod:`ensign.ens.cache`): answers are kept ``ttl`` seconds, ``NotFound`` and
``InvalidRequest`` answers ``negative_ttl`` seconds, at most ``max_entries`` of them;
``ServiceUnavailable`` is never cached. Concurrent lookups of the same name share one resolution.

URL policy: with a real node (:func:`open_lookup` with ``ChainSettings.rpc_url``) web3's safe
CCIP-Read policy stays on (https only, no private or loopback addresses), enforced a second time
by :func:`public_gateway_only`, and profile links obey the same rule, checked again when the connection is made, so DNS cannot swap in a private address
after the check. Only the embedded dev chain loosens both, because its gateway is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ensign.config import ENS_REGISTRY_ADDRESS, ChainSettings
from ensign.ens import ccip
from ensign.ens.cache import CacheSettings, TTLCache
from ensign.ens.errors import InvalidProfile
from ensign.ens.fetch import read_capped
from ensign.ens.names import ensip15_normalize
from ensign.ens.wallets import WalletSignatures
from ensign.errors import EncodingError, EnsignError, InvalidRequest, NotFound, ServiceUnavailable
from ensign.protocol.encoding import checksum_address
from ensign.protocol.models import DeliveryServiceProfile, SignedUserProfile
from ensign.protocol.profile import (
    ParsedProfile,
    ProfileLink,
    check_linked_delivery_service_profile,
    check_linked_profile,
    load_delivery_service_profile,
    load_user_profile,
    parse_profile_record,
)
from ensign.protocol.ds_keys import parse_delivery_service_keys_record
from ensign.protocol.records import (
    DELIVERY_SERVICE_KEYS_RECORD_NAME,
    DELIVERY_SERVICE_RECORD_NAME,
    PROFILE_RECORD_NAME,
    REVOCATION_RECORD_NAME,
)
from ensign.protocol.revocation import merge_revocations, parse_revocation_record
from ensign.protocol.safe_json import parse_json

T = TypeVar("T")

# The Universal Resolver wraps a resolver's own revert in ResolverError(bytes).
_RESOLVER_ERROR_SELECTOR = keccak(text="ResolverError(bytes)")[:4]
# A linked profile larger than this is not a profile: refuse it rather than buffer it.
MAX_LINKED_PROFILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ResolvedUserProfile:
    """A validated dm3 user profile and the name it was found under.

    :param name: the normalised ENS name that was looked up
    :param address: EIP-55 ``addr`` of the name; the profile is its signature (by key or contract)
    :param signed_profile: the profile with its signature
    """

    name: str
    address: str
    signed_profile: SignedUserProfile
    #: ``{public signing key: revokedAt ms}`` of the address (step 5 of the module docstring).
    revoked: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkPolicy:
    """Which profile links may be fetched.

    :param allow_http: accept ``http://`` links, not only ``https://`` (embedded chain only)
    :param allow_private: accept hosts on loopback, private and link-local networks (embedded only)
    :param timeout: seconds for fetching one link (default 10)
    :param max_bytes: largest linked profile accepted (default 64 KiB)
    """

    allow_http: bool = False
    allow_private: bool = False
    timeout: float = 10.0
    max_bytes: int = MAX_LINKED_PROFILE_BYTES


def is_public_ip(text: str) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local, …)."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, policy: LinkPolicy, what: str) -> None:
    """Refuse (``InvalidRequest``, starting with ``what``) a URL ``policy`` does not allow: not https
    (or http when allowed), no host, or an IP literal off the public network. A host name is
    checked when the connection is made (:func:`policy_session`)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and policy.allow_http):
        raise InvalidRequest(f"{what} must use https")
    host = parts.hostname or ""
    if not host:
        raise InvalidRequest(f"{what} must name a host")
    if not policy.allow_private and _is_ip_literal(host) and not is_public_ip(host):
        raise InvalidRequest(f"{what} must point to a public host")


def is_non_public_host_error(error: BaseException) -> bool:
    """True when a connection of a :func:`policy_session` was refused for a non-public host."""
    return isinstance(error, aiohttp.ClientConnectorError) and isinstance(error.os_error, _NonPublicHostError)


def policy_session(policy: LinkPolicy) -> aiohttp.ClientSession:
    """An HTTP session for URLs from ENS records: unless ``policy.allow_private``, its connections
    reach only hosts whose addresses are public, checked as each connection is made, so DNS
    cannot swap in a private address after :func:`check_url`. The caller closes it."""
    resolver: AbstractResolver = DefaultResolver() if policy.allow_private else _PublicOnlyResolver()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))


class _NonPublicHostError(OSError):
    """Raised by the link resolver when a host has only non-public addresses."""


class _PublicOnlyResolver(AbstractResolver):
    """DNS resolver that drops non-public addresses, so a link cannot reach the private network."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = [r for r in await self._inner.resolve(host, port, family) if is_public_ip(r["host"])]
        if not results:
            raise _NonPublicHostError(f"{host} has no public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


class NameLookup:
    """Resolve ENS names and dm3 profiles through ``AsyncENS``, with a cache.

    :param w3: the web3 instance to read through; its provider's CCIP-Read settings apply
    :param registry: address of the ENS registry (default: ENS's canonical address)
    :param cache: lifetimes and size bound of the cache (default :class:`CacheSettings`)
    :param link_policy: which profile links may be fetched (default: https to public hosts)
    :param on_close: awaited by :meth:`close`, e.g. to disconnect a provider this lookup owns
    :param clock: monotonic seconds for the cache (tests step a fake clock)
    :param revocation_domains: parents of the address names ``0x<address>.<domain>`` whose
        revocation lists apply to every name of the address (Ensign's ``ADDR_DOMAINS``)

    Use as ``async with NameLookup(w3) as lookup: ...`` or call :meth:`close` when done.
    """

    def __init__(
        self,
        w3: Any,
        *,
        registry: str = ENS_REGISTRY_ADDRESS,
        cache: CacheSettings | None = None,
        link_policy: LinkPolicy | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        revocation_domains: Sequence[str] = (),
    ) -> None:
        self.w3 = w3
        self.revocation_domains = tuple(_normalise(domain) for domain in revocation_domains)
        #: Wallet signature checks (ECDSA, then EIP-1271 through ``w3``): :meth:`wallet_signed`.
        self.wallets = WalletSignatures(w3)
        self._registry = checksum_address(registry)
        self._ur: Any = None
        self._ens: Any = None
        self.cache: TTLCache[tuple[str, str], Any] = TTLCache(cache, clock=clock)
        self.link_policy = link_policy or LinkPolicy()
        self._inflight: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._on_close = on_close

    async def __aenter__(self) -> NameLookup:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session for profile links and whatever ``on_close`` releases."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            await on_close()

    # -- public API ---------------------------------------------------------------------------

    async def address(self, name: str) -> str:
        """The EIP-55 address in ``name``'s ``addr`` record; ``NotFound`` when it has none."""
        normal = _normalise(name)
        return await self._cached(("addr", normal), lambda: self._address(normal))

    async def text(self, name: str, key: str) -> str:
        """The text record ``key`` of ``name``; ``""`` when the resolver has no such record."""
        normal = _normalise(name)
        # An empty record is a miss: it is kept only for the negative TTL.
        return await self._cached((f"text:{key}", normal), lambda: self._text(normal, key), missing=lambda v: v == "")

    async def user_profile(self, name: str) -> ResolvedUserProfile:
        """The validated dm3 profile of ``name`` (see the module docstring for the rules)."""
        normal = _normalise(name)
        return await self._cached(("profile", normal), lambda: self._user_profile(normal))

    async def delivery_service_profile(self, name: str) -> DeliveryServiceProfile:
        """The ``network.dm3.deliveryService`` profile of the delivery service named ``name``."""
        normal = _normalise(name)
        return await self._cached(("ds", normal), lambda: self._delivery_service_profile(normal))

    async def delivery_service_signing_keys(self, name: str) -> tuple[str, ...]:
        """The keys whose postmarks count as the delivery service's: its profile's signing key, then
        those of its ``eth.ensign.deliveryServiceKeys`` record during a key rotation
        (:mod:`ensign.protocol.ds_keys`; a malformed record counts as none)."""
        profile, text = await asyncio.gather(
            self.delivery_service_profile(name), self.text(name, DELIVERY_SERVICE_KEYS_RECORD_NAME)
        )
        others: tuple[str, ...] = ()
        if text:
            try:
                others = parse_delivery_service_keys_record(text)
            except InvalidRequest:
                others = ()
        return (profile.public_signing_key, *(key for key in others if key != profile.public_signing_key))

    async def wallet_signed(self, address: str, text: str, signature: str) -> bool:
        """Whether ``address`` signed ``text`` (EIP-191), by its key or as a contract wallet
        (:meth:`ensign.ens.wallets.WalletSignatures.verify`, on this lookup's chain)."""
        return await self.wallets.verify(address, text, signature)

    def forget(self, name: str) -> None:
        """Drop every cached answer about ``name``, e.g. after its profile was updated."""
        normal = _normalise(name)
        for kind in (
            "addr",
            "profile",
            "ds",
            f"text:{PROFILE_RECORD_NAME}",
            f"text:{DELIVERY_SERVICE_RECORD_NAME}",
            f"text:{REVOCATION_RECORD_NAME}",
            f"text:{DELIVERY_SERVICE_KEYS_RECORD_NAME}",
        ):
            self.cache.invalidate((kind, normal))

    # -- resolution ---------------------------------------------------------------------------

    async def _address(self, name: str) -> str:
        node = ccip.normal_namehash(name)
        return _address_value(name, await self._resolve_record(name, ccip.encode_addr_call(node)))

    async def _text(self, name: str, key: str) -> str:
        node = ccip.normal_namehash(name)
        return _text_value(name, key, await self._resolve_record(name, ccip.encode_text_call(node, key)))

    async def _user_profile(self, name: str) -> ResolvedUserProfile:
        text, address, own_list = await self._profile_records(name)
        if isinstance(text, BaseException):
            raise text
        if not text:
            raise NotFound(f"{name} has no dm3 profile (no {PROFILE_RECORD_NAME} record)")
        signed = await self._load_user_profile(name, text)
        if isinstance(address, NotFound):
            raise InvalidProfile(f"{name} has a dm3 profile but no address record to check its signature against")
        if isinstance(address, BaseException):
            raise address
        if not await self.wallets.verify_profile(signed, address):
            raise InvalidProfile(f"the dm3 profile of {name} is not signed by the name's address {address}")
        if isinstance(own_list, BaseException):
            raise own_list
        revoked = await self._revoked_keys(name, address, own_list)
        return ResolvedUserProfile(name=name, address=address, signed_profile=signed, revoked=revoked)

    async def _revoked_keys(self, name: str, address: str, own_list: str) -> dict[str, int]:
        """Step 5 of the module docstring: the address's revoked keys from every place they may be
        (``own_list``: the name's own record, already read)."""
        address_names = dict.fromkeys(f"{address.lower()}.{domain}" for domain in self.revocation_domains)
        address_names.pop(name, None)
        texts = [own_list, *await asyncio.gather(*(self._revocation_text(each) for each in address_names))]
        lists = []
        for text in texts:
            if not text:
                continue
            try:
                revocations = parse_revocation_record(text)
            except InvalidRequest:
                continue
            if await self.wallets.verify_revocations(revocations, address):
                lists.append(revocations)
        return merge_revocations(lists)

    async def _revocation_text(self, name: str) -> str:
        """The name's revocation record; ``""`` when there is none or the name does not resolve."""
        try:
            return await self.text(name, REVOCATION_RECORD_NAME)
        except (NotFound, InvalidRequest):
            return ""

    async def _profile_records(self, name: str) -> tuple[str | EnsignError, str | EnsignError, str | EnsignError]:
        """The profile text, the address and the revocation list (``""`` for none) of ``name``, each
        a value or the error it gives.

        All come from the cache when it has them; otherwise from one multicall, whose answers are
        cached under their own keys, as :meth:`text` and :meth:`address` would cache them.
        """
        text_key, addr_key = (f"text:{PROFILE_RECORD_NAME}", name), ("addr", name)
        list_key = (f"text:{REVOCATION_RECORD_NAME}", name)
        cached = [self.cache.get(key) for key in (text_key, addr_key, list_key)]
        if all(entry is not None for entry in cached):
            text, address, own_list = (_outcome(entry.unwrap) for entry in cached if entry is not None)
            return text, address, _no_list(own_list)
        node = ccip.normal_namehash(name)
        try:
            text_entry, addr_entry, list_entry = await self._resolve_records(
                name,
                [
                    ccip.encode_text_call(node, PROFILE_RECORD_NAME),
                    ccip.encode_addr_call(node),
                    ccip.encode_text_call(node, REVOCATION_RECORD_NAME),
                ],
            )
        except (NotFound, InvalidRequest) as exc:
            # The whole call failed (no resolver, …): the same answer for any record alone.
            for key in (text_key, addr_key, list_key):
                self._remember(key, exc)
            raise
        text = _outcome(lambda: _text_value(name, PROFILE_RECORD_NAME, _entry_value(name, text_entry)))
        address = _outcome(lambda: _address_value(name, _entry_value(name, addr_entry)))
        own_list = _outcome(lambda: _text_value(name, REVOCATION_RECORD_NAME, _entry_value(name, list_entry)))
        self._remember(text_key, text, missing=text == "")
        self._remember(addr_key, address)
        self._remember(list_key, own_list, missing=own_list == "")
        return text, address, _no_list(own_list)

    def _remember(self, key: tuple[str, str], outcome: Any, missing: bool = False) -> None:
        # As _produce caches: values, NotFound and InvalidRequest; never ServiceUnavailable.
        if isinstance(outcome, NotFound | InvalidRequest):
            self.cache.put_error(key, outcome)
        elif not isinstance(outcome, BaseException):
            self.cache.put(key, outcome, missing=missing)

    async def _load_user_profile(self, name: str, text: str) -> SignedUserProfile:
        record = _parse_record(name, PROFILE_RECORD_NAME, text)
        try:
            if isinstance(record, ProfileLink):
                obj = await self._fetch_link(name, record)
                return check_linked_profile(obj, record)
            return load_user_profile(record.value)
        except InvalidRequest as exc:
            raise InvalidProfile(f"the dm3 profile of {name} is invalid: {exc.message}") from exc

    async def _delivery_service_profile(self, name: str) -> DeliveryServiceProfile:
        text = await self.text(name, DELIVERY_SERVICE_RECORD_NAME)
        if not text:
            raise NotFound(f"{name} has no delivery-service profile (no {DELIVERY_SERVICE_RECORD_NAME} record)")
        record = _parse_record(name, DELIVERY_SERVICE_RECORD_NAME, text)
        try:
            if isinstance(record, ProfileLink):
                obj = await self._fetch_link(name, record)
                return check_linked_delivery_service_profile(obj, record)
            return load_delivery_service_profile(record.value)
        except InvalidRequest as exc:
            raise InvalidProfile(f"the delivery-service profile of {name} is invalid: {exc.message}") from exc

    async def _fetch_link(self, name: str, link: ProfileLink) -> Any:
        """GET a profile link under the link policy; the JSON body, or an error saying why not."""
        policy = self.link_policy
        if link.kind == "http" and link.dm3_hash is None:
            # Without a hash the fetched profile could not be checked: do not fetch it at all.
            raise InvalidRequest("the profile link carries no dm3Hash, so its content cannot be checked")
        check_url(link.url, policy, "profile links")
        session = self._link_session()
        try:
            async with session.get(
                link.url,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=policy.timeout),
                headers={"Accept": "application/json"},
            ) as response:
                if response.status >= 500:
                    raise ServiceUnavailable(f"the profile link of {name} answered HTTP {response.status}")
                if response.status != 200:
                    raise InvalidRequest(f"the profile link answered HTTP {response.status}")
                raw = await read_capped(response.content, policy.max_bytes)
        except aiohttp.ClientConnectorError as exc:
            if is_non_public_host_error(exc):
                raise InvalidRequest("profile links must point to a public host") from None
            raise ServiceUnavailable(f"the profile link of {name} cannot be reached") from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ServiceUnavailable(f"the profile link of {name} cannot be reached") from exc
        if len(raw) > policy.max_bytes:
            raise InvalidRequest(f"the linked profile is larger than {policy.max_bytes} bytes")
        try:
            return parse_json(raw, what="it")
        except EncodingError as exc:
            raise InvalidRequest(f"the linked profile is not JSON ({exc.message})") from None

    def _link_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = policy_session(self.link_policy)
        return self._session

    # -- plumbing -----------------------------------------------------------------------------

    async def _cached(
        self,
        key: tuple[str, str],
        produce: Callable[[], Awaitable[T]],
        missing: Callable[[T], bool] | None = None,
    ) -> T:
        hit = self.cache.get(key)
        if hit is not None:
            return hit.unwrap()  # type: ignore[no-any-return]
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._produce(key, produce, missing))
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._settled(key, done))
        # shield: one caller giving up must not cancel the resolution the others wait for.
        return await asyncio.shield(future)

    def _settled(self, key: tuple[str, str], done: asyncio.Future[Any]) -> None:
        self._inflight.pop(key, None)
        # Mark the outcome as seen: every waiter may have been cancelled before it arrived.
        if not done.cancelled():
            done.exception()

    async def _produce(
        self, key: tuple[str, str], produce: Callable[[], Awaitable[T]], missing: Callable[[T], bool] | None
    ) -> T:
        try:
            value = await produce()
        except (NotFound, InvalidRequest) as exc:
            self.cache.put_error(key, exc)
            raise
        self.cache.put(key, value, missing=missing is not None and missing(value))
        return value

    async def _resolve_record(self, name: str, record_call: bytes) -> bytes:
        """``UniversalResolver.resolve(dnsName, recordCall)`` with CCIP-Read; the record's ABI bytes.

        This is the call ``AsyncENS.address`` / ``get_text`` make, on the same contract with the same
        web3 CCIP-Read machinery. It is made here because AsyncENS turns every revert into
        ``None`` / ``ResolverNotFound``, and a gateway outage reaches us as a revert: the batch
        gateway reports it as ``HttpError(503, …)`` and the Universal Resolver re-raises that. The
        revert data tells "no such record" from "try again later".
        """
        from ens.exceptions import ENSException
        from web3.exceptions import (
            ContractLogicError,
            MultipleFailedRequests,
            StaleBlockchain,
            TooManyRequests,
            Web3Exception,
        )

        dns_name = ccip.dns_encode(name)
        try:
            result, _resolver = await self._universal_resolver.functions.resolve(dns_name, record_call).call()
        except ContractLogicError as exc:
            raise _revert_error(name, exc.data) from None
        except MultipleFailedRequests:
            raise ServiceUnavailable(f"no CCIP-Read gateway for {name} answered") from None
        except TooManyRequests:
            raise NotFound(f"{name} cannot be resolved (too many CCIP-Read redirects)") from None
        except aiohttp.ClientResponseError as exc:
            # web3 raises a gateway's 4xx as is: the gateway refused this request for good.
            raise NotFound(f"the gateway for {name} refused the lookup (HTTP {exc.status})") from None
        except StaleBlockchain:
            raise ServiceUnavailable("the Ethereum node is not synced (its newest block is stale)") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ServiceUnavailable("the Ethereum node cannot be reached") from exc
        except (Web3Exception, ENSException) as exc:
            # Malformed gateway answers, RPC errors, a chain without a Universal Resolver: nothing
            # the caller did, and possibly transient.
            raise ServiceUnavailable(f"{name} cannot be resolved right now ({type(exc).__name__})") from exc
        return bytes(result)

    async def _resolve_records(self, name: str, record_calls: list[bytes]) -> list[bytes]:
        """Several records of ``name`` in one ``resolve(dnsName, multicall(calls))``; one entry per
        call: the record's ABI bytes, or error data (:func:`ensign.ens.ccip.is_error_entry`)."""
        try:
            entries = ccip.decode_multicall_results(await self._resolve_record(name, ccip.encode_multicall(record_calls)))
        except InvalidRequest:
            raise ServiceUnavailable(f"{name} cannot be resolved right now (malformed multicall answer)") from None
        if len(entries) != len(record_calls):
            raise ServiceUnavailable(f"{name} cannot be resolved right now (the multicall answered {len(entries)} records)")
        return entries

    @property
    def _universal_resolver(self) -> Any:
        if self._ur is None:
            from ens.abis import UNIVERSAL_RESOLVER
            from ens.constants import UNIVERSAL_RESOLVER_ADDR

            self._ur = self.w3.eth.contract(address=UNIVERSAL_RESOLVER_ADDR, abi=UNIVERSAL_RESOLVER)
        return self._ur

    @property
    def ens(self) -> Any:
        """web3's ``AsyncENS`` on the same node and registry, for reads this class does not offer."""
        if self._ens is None:
            from ens import AsyncENS

            self._ens = AsyncENS.from_web3(self.w3, self._registry)
        return self._ens


def _revert_error(name: str, data: Any) -> EnsignError:
    """The error for a reverted Universal Resolver call, from its revert data."""
    raw = _revert_bytes(data)
    if raw[:4] == ccip.HTTP_ERROR_SELECTOR:
        try:
            status, _message = abi_decode(["uint16", "string"], raw[4:])
        except (DecodingError, ValueError, OverflowError):
            status = 500
        if status >= 500:
            return ServiceUnavailable(f"the gateway for {name} is unavailable (HTTP {status})")
        return NotFound(f"the gateway for {name} refused the lookup (HTTP {status})")
    if raw[:4] == _RESOLVER_ERROR_SELECTOR:
        try:
            (inner,) = abi_decode(["bytes"], raw[4:])
        except (DecodingError, ValueError, OverflowError):
            inner = b""
        if inner[:4] == ccip.ERROR_SELECTOR:
            try:
                (reason,) = abi_decode(["string"], inner[4:])
            except (DecodingError, ValueError, OverflowError):
                reason = ""
            if reason:
                return NotFound(f"{name} cannot be resolved: the resolver refused ({reason[:200]})")
    return NotFound(f"{name} cannot be resolved (no resolver, or the resolver refused)")


def _entry_value(name: str, entry: bytes) -> bytes:
    """A multicall entry's value; its error raised as :func:`_revert_error` raises a whole call's.

    A failed batch-gateway request leaves its ``HttpError``/``Error`` as the entry; a resolver's
    revert is left as is, which a single call would have wrapped in ``ResolverError``.
    """
    if not ccip.is_error_entry(entry):
        return entry
    if entry[:4] == ccip.HTTP_ERROR_SELECTOR:
        raise _revert_error(name, entry)
    raise _revert_error(name, _RESOLVER_ERROR_SELECTOR + abi_encode(["bytes"], [entry]))


def _text_value(name: str, key: str, result: bytes) -> str:
    """``text(bytes32,string)``'s answer; ``""`` for no answer."""
    if not result:
        return ""
    try:
        return str(abi_decode(["string"], result)[0])
    except (DecodingError, ValueError, OverflowError):
        raise NotFound(f"the resolver of {name} gave a malformed {key} record") from None


def _address_value(name: str, result: bytes) -> str:
    address = _decode_address(result)
    if address is None:
        raise NotFound(f"{name} has no address record")
    return address


def _no_list(outcome: str | EnsignError) -> str | EnsignError:
    """A revocation record that is missing or unreadable counts as no list (as ``_revocation_text``)."""
    return "" if isinstance(outcome, NotFound | InvalidRequest) else outcome


def _outcome(produce: Callable[[], T]) -> T | EnsignError:
    """``produce()``'s value, or the Ensign error it raised (kept, to be raised or cached later)."""
    try:
        return produce()
    except EnsignError as exc:
        return exc


def _revert_bytes(data: Any) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


def _decode_address(result: bytes) -> str | None:
    """``addr(bytes32)``'s answer as EIP-55, ``None`` for no answer or the zero address."""
    if not result:
        return None
    try:
        (address,) = abi_decode(["address"], result)
    except (DecodingError, ValueError, OverflowError):
        return None
    if int(address, 16) == 0:
        return None
    return str(to_checksum_address(address))


def _normalise(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("an ENS name is required")
    return _ensip15(name.strip())


@functools.lru_cache(maxsize=4096)
def _ensip15(name: str) -> str:
    # Remembered with its checks (twice per submission, the same names again and again); a name
    # refused raises and is not remembered.
    normal = ensip15_normalize(name, error=InvalidRequest)
    if "." not in normal or any(not label for label in normal.split(".")):
        raise InvalidRequest(f"{name!r} is not a full ENS name")
    return normal


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _parse_record(name: str, key: str, text: str) -> ParsedProfile | ProfileLink:
    try:
        return parse_profile_record(text)
    except EnsignError as exc:
        raise InvalidProfile(f"the {key} record of {name} is malformed: {exc.message}") from exc


def production_web3(rpc_url: str, *, timeout: float = 10.0) -> Any:
    """An ``AsyncWeb3`` for a real node at ``rpc_url`` with a safe CCIP-Read policy.

    http(s) URLs use ``AsyncHTTPProvider``; ws(s) URLs a ``WebSocketProvider`` that the caller must
    connect (:func:`open_lookup` does). Gateway URLs must be https (web3's default) and resolve
    only to public addresses. web3 checks the latter against a module-level list that the dev
    chain edits process-wide, so the same rule is enforced again here by a URL validator of our
    own, which web3 runs in addition to its checks. Each call to the node gives up after
    ``timeout`` seconds (web3's default is 30, the whole of a request's deadline).
    """
    from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider

    scheme = urlsplit(rpc_url).scheme
    provider: Any = (
        WebSocketProvider(rpc_url, request_timeout=timeout)
        if scheme in ("ws", "wss")
        else AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)})
    )
    provider.ccip_read_allow_http = False
    provider.ccip_read_url_validator = public_gateway_only
    return AsyncWeb3(provider)


async def public_gateway_only(url: str) -> None:
    """web3 CCIP-Read URL validator: refuse a gateway host that resolves to any non-public address."""
    from web3.exceptions import Web3ValidationError

    host = urlsplit(url).hostname or ""
    if not host:
        raise Web3ValidationError("CCIP-Read URL has no host")
    if _is_ip_literal(host):
        addresses = [host]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            raise Web3ValidationError(f"CCIP-Read host {host} does not resolve") from None
        addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(is_public_ip(address) for address in addresses):
        raise Web3ValidationError(f"CCIP-Read host {host} is not a public address")


async def open_lookup(
    chain: ChainSettings,
    *,
    w3: Any = None,
    cache: CacheSettings | None = None,
    link_timeout: float = 10.0,
    revocation_domains: Sequence[str] = (),
) -> NameLookup:
    """A :class:`NameLookup` for ``chain``.

    :param chain: with ``rpc_url`` set, a real node under web3's safe CCIP-Read policy; with
        ``rpc_url=None``, the embedded dev chain, whose ``AsyncWeb3`` must be passed as ``w3``
        (from ``stack.devchain``, which loosens the URL policy for its 127.0.0.1 gateway)
    :param w3: the embedded chain's web3 instance (ignored when ``rpc_url`` is set)
    :param cache: cache lifetimes and size bound (default :class:`CacheSettings`)
    :param link_timeout: seconds for fetching one profile link (default 10)
    :param revocation_domains: see :class:`NameLookup`
    """
    if chain.rpc_url is not None:
        web3 = production_web3(chain.rpc_url, timeout=chain.rpc_timeout)
        if urlsplit(chain.rpc_url).scheme in ("ws", "wss"):
            try:
                await web3.provider.connect()
            except Exception as exc:
                raise ServiceUnavailable("the Ethereum node cannot be reached") from exc
        # Both providers keep connections (HTTP sessions, a websocket) until disconnected.
        on_close = web3.provider.disconnect
        return NameLookup(
            web3,
            registry=chain.ens_registry,
            cache=cache,
            link_policy=LinkPolicy(timeout=link_timeout),
            on_close=on_close,
            revocation_domains=revocation_domains,
        )
    if w3 is None:
        raise ValueError("the embedded chain's AsyncWeb3 is required when ChainSettings.rpc_url is not set")
    return NameLookup(
        w3,
        registry=chain.ens_registry,
        cache=cache,
        link_policy=LinkPolicy(allow_http=True, allow_private=True, timeout=link_timeout),
        revocation_domains=revocation_domains,
    )


_LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def allow_loopback_ccip_gateways() -> None:
    """Let web3 CCIP-Read fetch from loopback addresses (127.0.0.0/8, ::1). Process-wide; dev/tests only.

    web3 ≥ 7.15 refuses gateway URLs resolving to private or loopback IPs and has no per-provider
    switch for it, only the module-level ``web3.utils.ccip_url_validation.BLOCKED_IP_NETWORKS``.
    Raises ``RuntimeError`` if web3 no longer has that list, so an upgrade fails loudly here
    instead of as an opaque ``MultipleFailedRequests`` at lookup time.
    """
    import web3.utils.ccip_url_validation as ccip_url_validation

    networks = getattr(ccip_url_validation, "BLOCKED_IP_NETWORKS", None)
    if not isinstance(networks, list):
        raise RuntimeError(
            "web3.utils.ccip_url_validation.BLOCKED_IP_NETWORKS is missing or not a list; "
            "the dev chain cannot allow its loopback CCIP-Read gateway with this web3 version"
        )
    networks[:] = [network for network in networks if network not in _LOOPBACK_NETWORKS]
