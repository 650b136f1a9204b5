"""The two kinds of names the backend serves, and how a full ENS name is sorted into one of them.

* An **address name** ``<address>.<addr-domain>`` (``0xab…01.addr.ensign.eth``): the label is the
  owner's address in lowercase hex, the parent one of ``BackendSettings.addr_domains``. It exists
  once the address has registered a profile under that domain.
* An **alias** ``<label>.<user-domain>`` (``alice.user.ensign.eth``): one label under one of
  ``BackendSettings.user_domains``, claimed by an address with its profile's Ed25519 key.

Names are compared in dm3's normalised form (:func:`ensign.protocol.encoding.normalize_name`, what
dm3 clients send). A new alias must also be a valid ENSIP-15 name that ENSIP-15 leaves unchanged, so
that every ENS client (web3.py, ethers 6, viem) resolves exactly the name that was claimed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from backend.errors import UnsupportedDomain
from ensign.ens.names import ensip15_normalize
from ensign.errors import EncodingError, InvalidName, InvalidRequest
from ensign.protocol.encoding import checksum_address, is_address, normalize_name

__all__ = ["AddressName", "AliasName", "Domains", "address_label"]


def address_label(address: str) -> str:
    """The label of an address name: the address in lowercase hex (what dm3 clients register)."""
    return address.lower()


@dataclass(frozen=True)
class AddressName:
    """``<address>.<domain>``; ``address`` is EIP-55 checksummed, ``name`` normalised."""

    name: str
    address: str
    domain: str


@dataclass(frozen=True)
class AliasName:
    """``<label>.<domain>`` under a user domain; ``name`` normalised."""

    name: str
    label: str
    domain: str


class Domains:
    """The parent domains this backend serves, from ``BackendSettings``.

    :param addr_domains: parents of address names, e.g. ``("addr.ensign.eth",)``.
    :param user_domains: parents of aliases, e.g. ``("user.ensign.eth",)``.
    """

    def __init__(self, addr_domains: Iterable[str], user_domains: Iterable[str]) -> None:
        self.addr_domains = tuple(normalize_name(d) for d in addr_domains)
        self.user_domains = tuple(normalize_name(d) for d in user_domains)

    def addr_domain(self, subdomain: str) -> str:
        """The supported addr domain named by ``subdomain`` (dm3's ``subdomain`` field).

        A leading dot is tolerated (dm3's widget keeps its setting as ``.addr.dm3.eth``).
        Raises :class:`InvalidRequest` (``unsupported_domain``) naming the domain otherwise.
        """
        text = subdomain[1:] if subdomain.startswith(".") else subdomain
        domain = _normalize(text, "subdomain")
        if domain not in self.addr_domains:
            raise UnsupportedDomain(
                f"subdomain {subdomain!r} is not supported; supported: {', '.join(self.addr_domains)}"
            )
        return domain

    def address_name(self, address: str, domain: str) -> AddressName:
        """The address name of ``address`` under the supported ``domain``."""
        return AddressName(f"{address_label(address)}.{domain}", checksum_address(address), domain)

    def parse(self, name: str) -> AddressName | AliasName | None:
        """Sort a normalised full name into an address name or an alias; ``None`` if it is neither.

        The first dot splits label from parent; a parent that is not one of our domains, an empty
        label, or an addr-domain label that is not an address all give ``None``.
        """
        label, dot, parent = name.partition(".")
        if not dot or not label:
            return None
        if parent in self.addr_domains and is_address(label) and label == label.lower():
            return AddressName(name, checksum_address(label), parent)
        if parent in self.user_domains:
            return AliasName(name, label, parent)
        return None

    def alias(self, raw: str, *, field: str = "dm3Name") -> AliasName:
        """Validate a name to be claimed or released as an alias; :class:`InvalidRequest` if not.

        The name must normalise, sit exactly one label below a user domain, be unchanged by
        ENSIP-15 normalisation, and not look like an address name when a domain serves both kinds.
        """
        name = _normalize(raw, field)
        label, _, parent = name.partition(".")
        if parent not in self.user_domains:
            under = [d for d in self.user_domains if parent.endswith("." + d)]
            if under:
                raise InvalidName(f"{field} {raw!r} must be one label directly under {under[0]}")
            raise UnsupportedDomain(
                f"{field} {raw!r} is not under a supported user domain; supported: {', '.join(self.user_domains)}"
            )
        if not label:
            raise InvalidName(f"{field} {raw!r} has an empty label")
        if parent in self.addr_domains and is_address(label):
            raise InvalidName(f"{field} {raw!r} is an address name, not an alias")
        try:
            ensip15 = ensip15_normalize(name)
        except InvalidRequest as exc:
            raise InvalidName(f"{field} {raw!r}: {exc.message}") from None
        if ensip15 != name:
            raise InvalidName(f"{field} {raw!r} is not in ENS normal form (ENSIP-15 gives {ensip15!r})")
        return AliasName(name, label, parent)

    def normalize(self, raw: str, *, field: str = "name") -> str:
        """dm3-normalise ``raw``; :class:`InvalidRequest` naming ``field`` if it cannot be."""
        return _normalize(raw, field)


def _normalize(raw: str, field: str) -> str:
    try:
        return normalize_name(raw)
    except EncodingError as exc:
        raise InvalidName(f"{field} is not a valid name: {exc.message}") from None
