"""What the delivery service needs from the outside world, as protocols the app gets injected.

* :class:`Directory` — ENS reads: a name's address, its validated user profile together with that
  address (:class:`ResolvedProfile`, so one lookup answers both), and a delivery service's profile
  (its keys and URL, for forwarding: :mod:`delivery.forwarder`); and the check of a wallet's
  signature, by its key or as an EIP-1271 contract wallet read through the same chain
  (:mod:`ensign.ens.wallets`). ``ensign.ens.lookup``'s class
  satisfies it in production; tests may pass the same class wired to the embedded chain.
* :class:`Chain` — the few chain reads the spam filters and ``/health`` need.
* :data:`Clock` — seconds since the epoch as a float (:mod:`ensign.clock`, shared by the three
  services). Every time-dependent decision (replay windows, token expiry, postmark timestamps,
  message TTLs) reads this one clock, so tests can move time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ensign.clock import Clock, system_clock
from ensign.errors import InvalidRequest, NotFound
from ensign.protocol.models import DeliveryServiceProfile, SignedUserProfile
from ensign.protocol.revocation import KeyRevokedError, check_not_revoked

__all__ = [
    "Chain",
    "Clock",
    "Directory",
    "ResolvedProfile",
    "Web3Chain",
    "address_or_none",
    "profile_or_none",
    "signing_key_revoked",
    "system_clock",
]

class ResolvedProfile(Protocol):
    """A name's validated profile and the address it was found under (the address signed it)."""

    @property
    def address(self) -> str: ...

    @property
    def signed_profile(self) -> SignedUserProfile: ...

    @property
    def revoked(self) -> Mapping[str, int]:
        """``{public signing key: revokedAt ms}`` of the address (:mod:`ensign.protocol.revocation`)."""
        ...


@runtime_checkable
class Directory(Protocol):
    """ENS lookups, as :class:`ensign.ens.lookup.NameLookup` offers them. Implementations normalise.

    ``address(name)`` returns the EIP-55 address of the name's ``addr`` record and raises
    ``NotFound`` when there is none. ``user_profile(name)`` returns an object with ``address``
    and ``signed_profile`` (a ``SignedUserProfile`` whose EIP-191 signature is that address's);
    it raises ``NotFound`` when the name has no profile and ``InvalidRequest`` when the
    profile is invalid. ``delivery_service_profile(name)`` returns the name's
    ``DeliveryServiceProfile`` and raises as ``user_profile``; ``delivery_service_signing_keys(name)``
    the keys whose signatures count as that service's (its profile's, then, during its key
    rotation, those of its ``eth.ensign.deliveryServiceKeys`` record). ``wallet_signed(address, text,
    signature)`` tells whether ``address`` ``personal_sign``ed ``text``: by its key, or as a contract
    wallet (EIP-1271). All raise ``ServiceUnavailable`` when ENS (the chain) cannot be reached.
    """

    async def address(self, name: str) -> str: ...

    async def user_profile(self, name: str) -> ResolvedProfile: ...

    async def delivery_service_profile(self, name: str) -> DeliveryServiceProfile: ...

    async def delivery_service_signing_keys(self, name: str) -> tuple[str, ...]: ...

    async def wallet_signed(self, address: str, text: str, signature: str) -> bool: ...


def signing_key_revoked(profile: ResolvedProfile, now: float) -> bool:
    """True when the profile's signing key is on its address's revocation list as of ``now``
    (seconds, this service's clock): nothing signed with it from then on is taken
    (:mod:`ensign.protocol.revocation`)."""
    try:
        check_not_revoked(profile.revoked, profile.signed_profile.profile.public_signing_key, int(now * 1000))
    except KeyRevokedError:
        return True
    return False


async def address_or_none(directory: Directory, name: str) -> str | None:
    """``directory.address(name)``, or ``None`` when the name has no address (or is no valid name)."""
    try:
        return await directory.address(name)
    except (NotFound, InvalidRequest):
        return None


async def profile_or_none(directory: Directory, name: str) -> ResolvedProfile | None:
    """The name's profile and address if ENS publishes a valid profile, else ``None``.

    An invalid profile (bad signature, malformed record) counts as none: it cannot vouch for keys.
    """
    try:
        return await directory.user_profile(name)
    except (NotFound, InvalidRequest):
        return None


@runtime_checkable
class Chain(Protocol):
    """Chain reads for the spam filters (amounts in wei / token base units) and health checks."""

    async def transaction_count(self, address: str) -> int: ...

    async def balance(self, address: str) -> int: ...

    async def token_balance(self, token: str, address: str) -> int: ...

    async def block_number(self) -> int: ...


_ERC20_BALANCE_OF = "0x70a08231"


class Web3Chain:
    """:class:`Chain` over a web3 ``AsyncWeb3`` instance (HTTP provider or the embedded chain)."""

    def __init__(self, w3: Any) -> None:
        self._w3 = w3

    async def transaction_count(self, address: str) -> int:
        return int(await self._w3.eth.get_transaction_count(address))

    async def balance(self, address: str) -> int:
        return int(await self._w3.eth.get_balance(address))

    async def token_balance(self, token: str, address: str) -> int:
        # balanceOf(address): selector + the address left-padded to 32 bytes.
        data = _ERC20_BALANCE_OF + address.lower().removeprefix("0x").rjust(64, "0")
        raw = await self._w3.eth.call({"to": token, "data": data})
        return int.from_bytes(bytes(raw)[:32], "big") if raw else 0

    async def block_number(self) -> int:
        return int(await self._w3.eth.block_number)
