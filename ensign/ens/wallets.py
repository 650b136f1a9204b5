"""Wallet signatures of both kinds: an account's own key (ECDSA) and a contract wallet (EIP-1271).

Every check of a wallet's EIP-191 ``personal_sign`` in Ensign — a profile (backend registration,
ENS lookups, the delivery service's sign-up), a binding or device-list message of the delivery
service — goes through :meth:`WalletSignatures.verify`:

1. the signature is recovered (:func:`ensign.protocol.keys.recover_personal_sign`); recovering to
   the claimed address settles it, without I/O;
2. otherwise, with a chain to read, the claimed address is asked
   ``isValidSignature(bytes32 digest, bytes signature)`` (EIP-1271) in one ``eth_call``, where
   ``digest`` is the EIP-191 digest of the signed text — what a contract wallet's owner signs, so
   one text works for both kinds of account. It is valid iff the answer starts with the magic value
   ``0x1626ba7e``. An address without code answers nothing, a contract without the method reverts:
   both are "not signed".

Limits (the call is made for anyone who posts a signature, so it is an outsider-spendable resource):

* at most :data:`MAX_CONCURRENT_CALLS` calls in flight per process; further checks wait for a slot;
* :data:`CALL_TIMEOUT` seconds per check (waiting for a slot included); a node that does not answer
  in time, or cannot be reached, is ``ServiceUnavailable`` (503), never "not signed";
* a signature the contract accepted is remembered :data:`VALID_SECONDS` seconds (at most
  :data:`MAX_REMEMBERED` of them), so a client repeating a request costs no second call; refusals
  are not remembered. A wallet whose owner changes may thus see its old owner's signatures accepted
  for that long.

Without a chain (``WalletSignatures()``) only ECDSA is checked.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from eth_abi.abi import encode as abi_encode

from ensign.errors import EncodingError, ServiceUnavailable, SignatureError
from ensign.protocol.encoding import checksum_address, eip191_digest, hex_to_bytes
from ensign.protocol.keys import recover_personal_sign
from ensign.protocol.models import SignedUserProfile
from ensign.protocol.profile import profile_creation_message
from ensign.protocol.revocation import RevocationList, revocation_message

__all__ = [
    "CALL_TIMEOUT",
    "EIP1271_MAGIC_VALUE",
    "MAX_CONCURRENT_CALLS",
    "MAX_REMEMBERED",
    "VALID_SECONDS",
    "WalletSignatures",
]

#: ``bytes4(keccak256("isValidSignature(bytes32,bytes)"))``: the selector, and the answer meaning "valid".
EIP1271_MAGIC_VALUE = bytes.fromhex("1626ba7e")
#: Seconds one contract-wallet check may take, waiting for a call slot included.
CALL_TIMEOUT = 5.0
#: ``isValidSignature`` calls one process makes at the same time.
MAX_CONCURRENT_CALLS = 8
#: Seconds a signature a contract accepted is taken as valid without asking again.
VALID_SECONDS = 300.0
#: Accepted contract-wallet signatures remembered at most (the oldest is forgotten first).
MAX_REMEMBERED = 4096


class WalletSignatures:
    """Checks that an address signed a text, as its own key or as an EIP-1271 contract wallet.

    :param w3: an ``AsyncWeb3`` on the chain the wallets live on; ``None`` checks ECDSA only. The
        attribute may be set later, by a stack that builds a service before the chain it reads.
    :param timeout: seconds per contract-wallet check (default :data:`CALL_TIMEOUT`)
    :param clock: monotonic seconds, for how long an accepted signature is remembered
    """

    def __init__(
        self,
        w3: Any = None,
        *,
        timeout: float = CALL_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.w3 = w3
        self._timeout = timeout
        self._clock = clock
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_CALLS)
        # (address, digest, signature) -> monotonic deadline
        self._valid: OrderedDict[tuple[str, bytes, bytes], float] = OrderedDict()

    async def verify(self, address: str, text: str, signature: str) -> bool:
        """True iff ``address`` signed ``text`` (EIP-191 ``personal_sign``): its key's signature, or
        one its contract accepts (EIP-1271).

        A malformed ``address`` is an :class:`EncodingError`; a malformed signature is ``False``;
        ``ServiceUnavailable`` when the chain must be asked and does not answer.
        """
        expected = checksum_address(address)
        try:
            if recover_personal_sign(text, signature) == expected:
                return True
        except SignatureError:
            pass
        if self.w3 is None:
            return False
        try:
            raw = hex_to_bytes(signature, what="wallet signature")
        except EncodingError:
            return False
        return await self._contract_accepts(expected, eip191_digest(text), raw)

    async def verify_profile(self, signed: SignedUserProfile, address: str) -> bool:
        """True iff ``signed.signature`` is ``address``'s signature of the profile creation message
        (:func:`ensign.protocol.profile.profile_creation_message`), by key or by contract."""
        expected = checksum_address(address)
        return await self.verify(expected, profile_creation_message(expected, signed.profile), signed.signature)

    async def verify_revocations(self, revocations: RevocationList, address: str) -> bool:
        """True iff the list is ``address``'s and signed by it, by key or by contract (the ECDSA-only
        check is :func:`ensign.protocol.revocation.verify_revocations`)."""
        expected = checksum_address(address)
        if revocations.address != expected:
            return False
        return await self.verify(expected, revocation_message(expected, revocations.revoked), revocations.signature)

    async def _contract_accepts(self, address: str, digest: bytes, signature: bytes) -> bool:
        key = (address, digest, signature)
        now = self._clock()
        deadline = self._valid.get(key)
        if deadline is not None:
            if deadline > now:
                return True
            del self._valid[key]
        try:
            async with asyncio.timeout(self._timeout):
                async with self._slots:
                    answer = await self._is_valid_signature(address, digest, signature)
        except TimeoutError:
            raise ServiceUnavailable(
                f"the chain did not answer within {self._timeout:g} s whether {address} signed this"
            ) from None
        if not answer:
            return False
        while len(self._valid) >= MAX_REMEMBERED:
            self._valid.popitem(last=False)
        self._valid[key] = now + VALID_SECONDS
        return True

    async def _is_valid_signature(self, address: str, digest: bytes, signature: bytes) -> bool:
        from web3.exceptions import ContractLogicError

        data = EIP1271_MAGIC_VALUE + abi_encode(["bytes32", "bytes"], [digest, signature])
        try:
            result = await self.w3.eth.call({"to": address, "data": "0x" + data.hex()})
        except ContractLogicError:
            return False  # a contract without the method, or one that refuses by reverting
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # web3 and its providers raise many types for a node that fails
            raise ServiceUnavailable(f"the chain could not be asked whether {address} signed this") from exc
        return bytes(result)[:4] == EIP1271_MAGIC_VALUE
