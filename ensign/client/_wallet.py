"""The wallet side: an Ethereum account that ``personal_sign``s texts, and what dm3 derives from it.

A :class:`Wallet` is an address and a signing callable. The callable takes the text to sign and
returns the ``0x`` hex signature, directly or as an awaitable, so a browser wallet bridge
(``await provider.request({"method": "personal_sign", …})``) and a local key both fit::

    Wallet.from_private_key("0x…")                      # a key, in process
    Wallet.from_account(Account.create())               # an eth-account LocalAccount
    Wallet("0xAb…01", lambda text: my_hsm.sign(text))   # any sync callable
    Wallet("0xAb…01", bridge.personal_sign)             # or an async one
    Wallet.contract("0xC0…01", Wallet.from_private_key("0x…"))  # an EIP-1271 contract wallet

The wallet signs twice in dm3: the key-creation message (:func:`derive_keys`, the same keys every
dm3 client derives) and the profile (:func:`sign_profile`). Both signatures are checked to recover
to the wallet's address — for a contract wallet, its owner's — so a callback that signs with
another account fails here, not later at a service.

A contract wallet (:meth:`Wallet.contract`) is the contract's address with its owner's signer: the
owner key ``personal_sign``s the same texts, and the services accept the signature because the
contract's ``isValidSignature`` (EIP-1271) says it is its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from ensign.errors import InvalidRequest, SignatureError
from ensign.protocol.encoding import checksum_address
from ensign.protocol.keys import (
    DEFAULT_NONCE,
    ProfileKeys,
    address_of_private_key,
    personal_sign,
    profile_keys_from_signature,
    recover_personal_sign,
    storage_key_creation_message,
)
from ensign.protocol.models import SignedUserProfile, UserProfile
from ensign.protocol.profile import profile_creation_message

__all__ = ["Signer", "Wallet", "derive_keys", "sign_profile"]

#: ``personal_sign`` as a callable: text in, ``0x`` hex signature (65 bytes) out, sync or async.
Signer = Callable[[str], "str | Awaitable[str]"]


class Wallet:
    """An Ethereum account able to ``personal_sign`` (EIP-191) a text.

    :param address: the account's address (any case; kept in EIP-55 form)
    :param signer: ``signer(text)`` returns the account's ``personal_sign`` of ``text`` as ``0x``
        hex, or an awaitable of it
    :param key_address: the address the signatures recover to, when not ``address`` (a contract
        wallet's owner key: :meth:`contract`)
    """

    def __init__(self, address: str, signer: Signer, *, key_address: str | None = None) -> None:
        if not callable(signer):
            raise InvalidRequest("signer must be a callable taking the text to sign")
        self._address = checksum_address(address)
        self._signer = signer
        self._key_address = checksum_address(key_address) if key_address is not None else self._address

    @classmethod
    def contract(cls, address: str, owner: Wallet) -> Wallet:
        """The EIP-1271 contract wallet at ``address``, signing with its owner's key (``owner``).

        Services accept its signatures by asking the contract (``isValidSignature`` of the EIP-191
        digest), so the contract must accept the owner's signature of that digest, as
        ``stack/contracts/OwnedWallet.vy`` does.
        """
        return cls(address, owner._signer, key_address=owner._key_address)

    @classmethod
    def from_private_key(cls, private_key: str) -> Wallet:
        """A wallet holding a secp256k1 key (hex, with or without ``0x``) in this process."""
        address = address_of_private_key(private_key)
        return cls(address, lambda text: personal_sign(private_key, text))

    @classmethod
    def from_account(cls, account: LocalAccount) -> Wallet:
        """A wallet over an eth-account ``LocalAccount`` (``Account.create()``, ``Account.from_key(…)``)."""

        def sign(text: str) -> str:
            return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()

        return cls(account.address, sign)

    @property
    def address(self) -> str:
        """The EIP-55 address."""
        return self._address

    @property
    def key_address(self) -> str:
        """The EIP-55 address the signatures recover to: :attr:`address`, or a contract wallet's owner."""
        return self._key_address

    async def personal_sign(self, text: str) -> str:
        """The wallet's ``personal_sign`` of ``text``, exactly as its signer returned it."""
        result = self._signer(text)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str):
            raise SignatureError(f"the wallet's signer returned {type(result).__name__}, not a 0x hex signature")
        return result

    async def sign_checked(self, text: str) -> str:
        """:meth:`personal_sign`, refused with :class:`SignatureError` unless it recovers to
        :attr:`key_address`."""
        signature = await self.personal_sign(text)
        if recover_personal_sign(text, signature) != self._key_address:
            raise SignatureError(f"the wallet's signature does not recover to its key's address {self._key_address}")
        return signature

    def __repr__(self) -> str:
        if self._key_address != self._address:
            return f"Wallet.contract({self._address!r}, key {self._key_address!r})"
        return f"Wallet({self._address!r})"


async def derive_keys(wallet: Wallet, nonce: str = DEFAULT_NONCE) -> ProfileKeys:
    """The dm3 profile keys of ``wallet``: it signs the key-creation message, the keys come from
    that signature (``specs/protocol.md`` §1.4). Same wallet and nonce, same keys, on every client."""
    message = storage_key_creation_message(wallet.address, nonce)
    return profile_keys_from_signature(await wallet.sign_checked(message), nonce)


async def sign_profile(wallet: Wallet, profile: UserProfile) -> SignedUserProfile:
    """``profile`` signed by ``wallet`` (EIP-191 over dm3's profile creation message)."""
    signature = await wallet.sign_checked(profile_creation_message(wallet.address, profile))
    return SignedUserProfile(profile=profile, signature=signature)
