"""CCIP-Read (EIP-3668) and ENSIP-10 wire formats for the offchain-resolver gateway. Pure: no I/O.

The flow this module encodes (byte layouts as EIP-3668 and ENS's OffchainResolver define them):

1. A client calls ``resolver.resolve(bytes name, bytes data)``; ``name`` is the DNS wire-format
   name, ``data`` an ABI record call: ``addr(bytes32)``, ``addr(bytes32,uint256)``,
   ``text(bytes32,string)`` or ``contenthash(bytes32)``, whose ``bytes32`` is the namehash.
2. The resolver reverts ``OffchainLookup(sender, urls, callData, callback, extraData)``; the client
   fetches ``callData`` from the gateway (:func:`gateway_call` says how).
3. The gateway decodes ``callData`` (:func:`decode_resolve_request`), looks the record up, encodes
   the value (:func:`encode_result`) and answers ``{"data": response}`` where
   ``response = abi.encode(bytes result, uint64 expires, bytes sig)`` (:func:`build_response`).
4. The client passes ``response`` to the resolver's callback, which checks ``sig`` over
   ``keccak256(0x1900 ‖ sender ‖ uint64 expires ‖ keccak256(callData) ‖ keccak256(result))``.

Two resolver variants differ in what the gateway must produce (:class:`CcipVariant`):

============  ==========================================  =========================================
variant       ensdomains/offchain-resolver (our default)  dm3 ``ERC3668Resolver`` + SignatureVerifier
============  ==========================================  =========================================
outer call    ``resolve(bytes,bytes)`` 0x9061b923         ``resolveWithContext(bytes,bytes,bytes)``
signature     raw digest, 64-byte EIP-2098 compact        EIP-191 ``personal_sign`` of the digest,
                                                          65 bytes ``r‖s‖v``
addr(bytes32) ``abi.encode(address)`` (32 bytes)          the 20 raw address bytes
============  ==========================================  =========================================

The Universal Resolver (web3.py 8's entry point) sends offchain lookups through an ENSIP-21 batch
gateway: ``query((address sender, string[] urls, bytes data)[])`` answered with
``abi.encode(bool[] failures, bytes[] responses)``. A gateway serving the UR stand-in of the dev
chain must answer that call too (:func:`decode_batch_query`, :func:`encode_batch_response`).
Several records of one name travel in one Universal Resolver call as the record call
``multicall(bytes[] calls)`` (:func:`encode_multicall`): the UR sends each call to the resolver,
the offchain ones as one batch query, and answers ``abi.encode(bytes[] results)``
(:func:`decode_multicall_results`), where a failed call's entry is its error data.

Malformed input raises one of the :class:`ensign.errors.InvalidRequest` subclasses drawn in
:mod:`ensign.ens.errors` (``invalid_calldata``, ``unsupported_selector``, ``name_not_normalized``, …).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_typing import Hash32
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError as EthKeysValidationError

from ensign.ens.names import ensip15_normalize
from ensign.ens.errors import (
    InvalidCalldata,
    InvalidDnsName,
    InvalidGatewayResponse,
    InvalidHex,
    NameNotNormalized,
    NamehashMismatch,
    UnsupportedRecord,
    UnsupportedSelector,
)
from ensign.errors import InvalidAddress, InvalidRequest

__all__ = [
    "ADDR_COIN_SELECTOR",
    "ADDR_SELECTOR",
    "BATCH_QUERY_SELECTOR",
    "CONTENTHASH_SELECTOR",
    "DEFAULT_TTL",
    "ERC165_SELECTOR",
    "ERROR_SELECTOR",
    "ETH_COIN_TYPE",
    "HTTP_ERROR_SELECTOR",
    "MAX_DNS_NAME_LENGTH",
    "MULTICALL_SELECTOR",
    "OFFCHAIN_LOOKUP_SELECTOR",
    "RESOLVE_SELECTOR",
    "RESOLVE_WITH_CONTEXT_SELECTOR",
    "RESOLVE_WITH_PROOF_SELECTOR",
    "TEXT_SELECTOR",
    "BatchRequest",
    "CcipVariant",
    "GatewayCall",
    "OffchainLookup",
    "RecordKind",
    "RecordQuery",
    "ResolveRequest",
    "SignedResponse",
    "build_response",
    "compact_signature",
    "decode_batch_query",
    "decode_batch_response",
    "decode_hex",
    "decode_multicall_results",
    "decode_offchain_lookup",
    "decode_resolve_request",
    "decode_response",
    "dns_decode",
    "dns_encode",
    "encode_addr_call",
    "encode_batch_query",
    "encode_batch_response",
    "encode_contenthash_call",
    "encode_error",
    "encode_http_error",
    "encode_multicall",
    "encode_offchain_lookup",
    "encode_resolve_call",
    "encode_response",
    "encode_result",
    "encode_text_call",
    "expanded_signature",
    "is_error_entry",
    "extra_data_for",
    "gateway_call",
    "is_batch_query",
    "namehash",
    "normal_namehash",
    "parse_address",
    "recover_signer",
    "sign_digest",
    "signature_hash",
]


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


RESOLVE_SELECTOR = _selector("resolve(bytes,bytes)")  # 0x9061b923, IExtendedResolver
RESOLVE_WITH_CONTEXT_SELECTOR = _selector("resolveWithContext(bytes,bytes,bytes)")  # 0xf8c30f63
RESOLVE_WITH_PROOF_SELECTOR = _selector("resolveWithProof(bytes,bytes)")  # 0xf4d4d2f8
ADDR_SELECTOR = _selector("addr(bytes32)")  # 0x3b3b57de
ADDR_COIN_SELECTOR = _selector("addr(bytes32,uint256)")  # 0xf1cb7e06
TEXT_SELECTOR = _selector("text(bytes32,string)")  # 0x59d1d43c
CONTENTHASH_SELECTOR = _selector("contenthash(bytes32)")  # 0xbc1c58d1
ERC165_SELECTOR = _selector("supportsInterface(bytes4)")  # 0x01ffc9a7
OFFCHAIN_LOOKUP_SELECTOR = _selector("OffchainLookup(address,string[],bytes,bytes4,bytes)")  # 0x556f1830
BATCH_QUERY_SELECTOR = _selector("query((address,string[],bytes)[])")  # 0xa780bab6
HTTP_ERROR_SELECTOR = _selector("HttpError(uint16,string)")  # 0x01800152
ERROR_SELECTOR = _selector("Error(string)")  # 0x08c379a0
MULTICALL_SELECTOR = _selector("multicall(bytes[])")  # 0xac9650d8

ETH_COIN_TYPE = 60
DEFAULT_TTL = 300
# DNS's limit on a whole wire-format name; the contracts bound `name` to the same 255 bytes.
MAX_DNS_NAME_LENGTH = 255
# secp256k1 group order: a canonical signature has s <= N // 2 (EIP-2).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_S_MASK = (1 << 255) - 1
_ZERO_ADDRESS = b"\x00" * 20
_ROOT_NODE = b"\x00" * 32

_OFFCHAIN_LOOKUP_TYPES = ["address", "string[]", "bytes", "bytes4", "bytes"]
_BATCH_QUERY_TYPES = ["(address,string[],bytes)[]"]
_RESPONSE_TYPES = ["bytes", "uint64", "bytes"]


class CcipVariant(StrEnum):
    """Which on-chain verifier the gateway's answers are for (see the module docstring)."""

    ENSDOMAINS = "ensdomains"
    DM3 = "dm3"


class RecordKind(StrEnum):
    ADDR = "addr"
    TEXT = "text"
    CONTENTHASH = "contenthash"


@dataclass(frozen=True)
class RecordQuery:
    """One record asked for: ``kind`` of ``name``; ``key`` for text, ``coin_type`` for addr.

    ``coin_type`` is ``None`` for ``addr(bytes32)`` (the ETH address, coin type 60, answered as an
    ``address``) and the requested coin type for ``addr(bytes32,uint256)`` (answered as ``bytes``).
    """

    name: str
    node: bytes
    kind: RecordKind
    key: str | None = None
    coin_type: int | None = None


@dataclass(frozen=True)
class ResolveRequest:
    """A decoded gateway request: the exact ``call_data`` (covered by the signature) and its parts."""

    call_data: bytes
    selector: bytes
    dns_name: bytes
    record_call: bytes
    context: bytes | None
    query: RecordQuery

    @property
    def variant_hint(self) -> CcipVariant:
        """The variant whose resolver sends this outer call."""
        if self.selector == RESOLVE_WITH_CONTEXT_SELECTOR:
            return CcipVariant.DM3
        return CcipVariant.ENSDOMAINS


@dataclass(frozen=True)
class SignedResponse:
    """The parts of a gateway answer ``abi.encode(bytes result, uint64 expires, bytes sig)``."""

    result: bytes
    expires: int
    signature: bytes


@dataclass(frozen=True)
class OffchainLookup:
    """EIP-3668 ``OffchainLookup(address sender, string[] urls, bytes callData, bytes4 callbackFunction, bytes extraData)``."""

    sender: str
    urls: tuple[str, ...]
    call_data: bytes
    callback: bytes
    extra_data: bytes


@dataclass(frozen=True)
class BatchRequest:
    """One ENSIP-21 batch-gateway request ``(address sender, string[] urls, bytes data)``."""

    sender: str
    urls: tuple[str, ...]
    data: bytes


@dataclass(frozen=True)
class GatewayCall:
    """The HTTP request an EIP-3668 client makes for one URL template: ``GET url`` or ``POST url`` with ``body``."""

    method: Literal["GET", "POST"]
    url: str
    body: dict[str, str] | None


# -- names ------------------------------------------------------------------------------------


def dns_encode(name: str) -> bytes:
    """DNS wire format of a normalised ENS name: per label one length byte and its UTF-8 bytes, then 0x00.

    ``""`` (the root) encodes to ``b"\\x00"``. Raises ``InvalidRequest`` (``invalid_dns_name``) for
    an empty label or an encoding longer than :data:`MAX_DNS_NAME_LENGTH` bytes.
    """
    if name == "":
        return b"\x00"
    encoded = bytearray()
    for index, label in enumerate(name.split(".")):
        raw = label.encode("utf-8")
        if not raw:
            raise InvalidDnsName(f"name has an empty label at position {index}")
        if len(raw) > 255:
            raise InvalidDnsName(f"label at position {index} is longer than 255 bytes")
        encoded.append(len(raw))
        encoded += raw
    encoded.append(0)
    if len(encoded) > MAX_DNS_NAME_LENGTH:
        raise InvalidDnsName(f"DNS-encoded name is {len(encoded)} bytes, longer than {MAX_DNS_NAME_LENGTH}")
    return bytes(encoded)


def dns_decode(data: bytes) -> str:
    """The dotted name in DNS wire format ``data``; the exact inverse of :func:`dns_encode`.

    Checks every length byte against the remaining input, requires the terminating 0x00 as the
    last byte, UTF-8 labels without dots, and at most :data:`MAX_DNS_NAME_LENGTH` bytes.
    """
    if len(data) > MAX_DNS_NAME_LENGTH:
        raise InvalidDnsName(f"DNS-encoded name is {len(data)} bytes, longer than {MAX_DNS_NAME_LENGTH}")
    labels: list[str] = []
    position = 0
    while True:
        if position >= len(data):
            raise InvalidDnsName("DNS-encoded name has no terminating zero byte")
        size = data[position]
        position += 1
        if size == 0:
            break
        if position + size > len(data):
            raise InvalidDnsName(f"DNS label at byte {position - 1} claims {size} bytes but the name ends first")
        try:
            label = data[position : position + size].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidDnsName(f"DNS label at byte {position - 1} is not UTF-8") from exc
        if "." in label:
            raise InvalidDnsName(f"DNS label at byte {position - 1} contains a dot")
        labels.append(label)
        position += size
    if position != len(data):
        raise InvalidDnsName(f"DNS-encoded name has {len(data) - position} bytes after its terminating zero byte")
    return ".".join(labels)


# web3's ``normal_name_to_hash`` normalises every label again and builds a ``Web3()`` per label:
# 5-15 ms per namehash. Names are normalised once (ensip15_normalize remembers them) and hashed here.
def normal_namehash(normal: str) -> bytes:
    """EIP-137 namehash of an already ENSIP-15-normalised name, without normalising it again.

    The same bytes as web3's ``ens.utils.normal_name_to_hash`` for a normalised name (``""`` is the
    root, 32 zero bytes), computed with one keccak per label and no ``Web3`` objects.
    """
    node = _ROOT_NODE
    if normal:
        for label in reversed(normal.split(".")):
            node = keccak(node + keccak(label.encode("utf-8")))
    return node


def namehash(name: str) -> bytes:
    """ENS namehash (EIP-137) of ``name`` after ENSIP-15 normalisation, as ENS clients compute it.

    Raises ``InvalidRequest`` (``invalid_name``) for a name ENSIP-15 rejects.
    """
    return normal_namehash(ensip15_normalize(name))


# -- calls ------------------------------------------------------------------------------------


def encode_text_call(node: bytes, key: str) -> bytes:
    """``text(bytes32 node, string key)`` calldata."""
    return TEXT_SELECTOR + abi_encode(["bytes32", "string"], [node, key])


def encode_addr_call(node: bytes, coin_type: int | None = None) -> bytes:
    """``addr(bytes32)`` calldata, or ``addr(bytes32,uint256)`` when ``coin_type`` is given."""
    if coin_type is None:
        return ADDR_SELECTOR + abi_encode(["bytes32"], [node])
    return ADDR_COIN_SELECTOR + abi_encode(["bytes32", "uint256"], [node, coin_type])


def encode_contenthash_call(node: bytes) -> bytes:
    """``contenthash(bytes32 node)`` calldata."""
    return CONTENTHASH_SELECTOR + abi_encode(["bytes32"], [node])


def encode_resolve_call(dns_name: bytes, record_call: bytes, context: bytes | None = None) -> bytes:
    """Outer gateway calldata: ``resolve(name, data)``, or dm3's ``resolveWithContext(name, data, context)``."""
    if context is None:
        return RESOLVE_SELECTOR + abi_encode(["bytes", "bytes"], [dns_name, record_call])
    return RESOLVE_WITH_CONTEXT_SELECTOR + abi_encode(["bytes", "bytes", "bytes"], [dns_name, record_call, context])


def encode_multicall(calls: Sequence[bytes]) -> bytes:
    """``multicall(bytes[] calls)`` calldata: several record calls of one name in one ``resolve``."""
    return MULTICALL_SELECTOR + abi_encode(["bytes[]"], [list(calls)])


def decode_multicall_results(data: bytes) -> list[bytes]:
    """The entries of a multicall answer ``abi.encode(bytes[] results)``, one per call in order.

    Raises ``InvalidRequest`` (``invalid_response``) when ``data`` is not that encoding.
    """
    try:
        (results,) = abi_decode(["bytes[]"], data)
    except (DecodingError, ValueError, OverflowError) as exc:
        raise InvalidGatewayResponse(f"malformed multicall answer: {exc}") from exc
    return [bytes(result) for result in results]


def is_error_entry(entry: bytes) -> bool:
    """Whether a multicall entry is error data (a selector and ABI words) rather than a value.

    Record values are ABI-encoded, a whole number of 32-byte words; error data is a 4-byte
    selector before its words (ENS clients tell the two apart the same way).
    """
    return len(entry) % 32 == 4


def extra_data_for(call_data: bytes, resolver: str) -> bytes:
    """The ensdomains resolver's ``extraData``: ``abi.encode(bytes callData, address resolver)``."""
    return abi_encode(["bytes", "address"], [call_data, parse_address(resolver)])


def _decode(types: Sequence[str], data: bytes, what: str) -> tuple[Any, ...]:
    try:
        return tuple(abi_decode(list(types), data))
    except (DecodingError, ValueError, OverflowError) as exc:
        # ValueError also covers UnicodeDecodeError from a string that is not UTF-8.
        raise InvalidCalldata(f"malformed {what}: {exc}") from exc


def _decode_record_call(name: str, record_call: bytes) -> RecordQuery:
    selector, args = record_call[:4], record_call[4:]
    if selector == TEXT_SELECTOR:
        node, key = _decode(["bytes32", "string"], args, "text(bytes32,string) call")
        return RecordQuery(name=name, node=node, kind=RecordKind.TEXT, key=key)
    if selector == ADDR_SELECTOR:
        (node,) = _decode(["bytes32"], args, "addr(bytes32) call")
        return RecordQuery(name=name, node=node, kind=RecordKind.ADDR)
    if selector == ADDR_COIN_SELECTOR:
        node, coin_type = _decode(["bytes32", "uint256"], args, "addr(bytes32,uint256) call")
        return RecordQuery(name=name, node=node, kind=RecordKind.ADDR, coin_type=coin_type)
    if selector == CONTENTHASH_SELECTOR:
        (node,) = _decode(["bytes32"], args, "contenthash(bytes32) call")
        return RecordQuery(name=name, node=node, kind=RecordKind.CONTENTHASH)
    raise UnsupportedRecord(f"unsupported record function 0x{selector.hex()}")


def decode_resolve_request(call_data: bytes) -> ResolveRequest:
    """Decode and check gateway calldata ``resolve(bytes,bytes)`` or ``resolveWithContext(bytes,bytes,bytes)``.

    Checks, in order: the outer selector, the ABI layout, the DNS name, that the name is already
    ENSIP-15 normalised (as the ensdomains gateway requires), the record function, and that the
    record call's node is the namehash of the name.
    """
    if len(call_data) < 4:
        raise InvalidCalldata("calldata is shorter than a function selector")
    selector = call_data[:4]
    context: bytes | None = None
    if selector == RESOLVE_SELECTOR:
        dns_name, record_call = _decode(["bytes", "bytes"], call_data[4:], "resolve(bytes,bytes) call")
    elif selector == RESOLVE_WITH_CONTEXT_SELECTOR:
        dns_name, record_call, context = _decode(
            ["bytes", "bytes", "bytes"], call_data[4:], "resolveWithContext(bytes,bytes,bytes) call"
        )
    else:
        raise UnsupportedSelector(f"no implementation for function with selector 0x{selector.hex()}")
    if len(record_call) < 4:
        raise InvalidCalldata("record call is shorter than a function selector")

    name = dns_decode(dns_name)
    normal = ensip15_normalize(name, error=NameNotNormalized)
    if normal != name:
        raise NameNotNormalized("name is not normalised")
    query = _decode_record_call(name, record_call)
    if normal_namehash(name) != query.node:
        raise NamehashMismatch("name does not match namehash")
    return ResolveRequest(
        call_data=bytes(call_data),
        selector=selector,
        dns_name=dns_name,
        record_call=record_call,
        context=context,
        query=query,
    )


# -- results ----------------------------------------------------------------------------------


def parse_address(value: str | bytes) -> str:
    """A checksummed address from 0x-hex or 20 raw bytes; ``InvalidRequest`` (``invalid_address``) otherwise."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 20:
            raise InvalidAddress(f"an address has 20 bytes, got {len(value)}")
        return to_checksum_address(bytes(value))
    if not isinstance(value, str) or not is_address(value):
        raise InvalidAddress("not an Ethereum address")
    return to_checksum_address(value)


def _address_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return _ZERO_ADDRESS
    return bytes.fromhex(parse_address(value)[2:])


def encode_result(
    query: RecordQuery, value: str | bytes | None, variant: CcipVariant = CcipVariant.ENSDOMAINS
) -> bytes:
    """The record call's return value as the resolver returns it; ``None`` means "no record".

    - text: ``abi.encode(string)``; ``None`` → ``""``.
    - addr(bytes32): ``abi.encode(address)`` (ensdomains) or 20 raw bytes (dm3); ``value`` is an
      address (hex or 20 bytes); ``None`` → the zero address, which clients read as "no address".
    - addr(bytes32,uint256): ``abi.encode(bytes)`` of the coin's address bytes; for coin type 60 an
      address string is accepted; ``None`` → empty bytes.
    - contenthash: ``abi.encode(bytes)``; ``None`` → empty bytes.
    """
    if query.kind is RecordKind.TEXT:
        if value is not None and not isinstance(value, str):
            raise InvalidGatewayResponse("a text record value is a string")
        return abi_encode(["string"], [value or ""])
    if query.kind is RecordKind.ADDR and query.coin_type is None:
        address = _address_bytes(value)
        if variant is CcipVariant.DM3:
            return address
        return abi_encode(["address"], [address])
    if query.kind is RecordKind.ADDR:
        if isinstance(value, str):
            raw = _address_bytes(value)
        else:
            raw = bytes(value or b"")
        return abi_encode(["bytes"], [raw])
    if value is not None and not isinstance(value, bytes | bytearray):
        raise InvalidGatewayResponse("a contenthash value is bytes")
    return abi_encode(["bytes"], [bytes(value or b"")])


# -- signatures -------------------------------------------------------------------------------


def signature_hash(target: str | bytes, expires: int, request: bytes, result: bytes) -> bytes:
    """``keccak256(0x1900 ‖ target ‖ uint64 expires ‖ keccak256(request) ‖ keccak256(result))``.

    ``target`` is the resolver (the ``sender`` of the lookup), ``request`` the whole outer calldata
    including its selector, ``result`` the encoded record value (ENS OffchainResolver's signed-answer layout).
    """
    if not 0 <= expires < 2**64:
        raise InvalidGatewayResponse("expires does not fit in uint64")
    preimage = b"\x19\x00" + _address_bytes(target) + expires.to_bytes(8, "big") + keccak(request) + keccak(result)
    return keccak(preimage)


def _as_account(private_key: LocalAccount | bytes | str) -> LocalAccount:
    if isinstance(private_key, LocalAccount):
        return private_key
    account: LocalAccount = Account.from_key(private_key)
    return account


def compact_signature(signature: bytes) -> bytes:
    """EIP-2098 form ``r ‖ (yParity << 255 | s)`` of a 65-byte ``r ‖ s ‖ v`` signature."""
    if len(signature) != 65:
        raise InvalidGatewayResponse(f"expected a 65-byte signature, got {len(signature)} bytes")
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    y_parity = v - 27 if v >= 27 else v
    if y_parity not in (0, 1):
        raise InvalidGatewayResponse("signature v is not 27 or 28")
    return r + ((y_parity << 255) | s).to_bytes(32, "big")


def expanded_signature(signature: bytes) -> bytes:
    """65-byte ``r ‖ s ‖ v`` (v = 27/28) from a 64-byte compact or 65-byte signature."""
    if len(signature) == 65:
        v = signature[64]
        return signature[:64] + bytes([v + 27 if v < 27 else v])
    if len(signature) == 64:
        vs = int.from_bytes(signature[32:], "big")
        return signature[:32] + (vs & _S_MASK).to_bytes(32, "big") + bytes([27 + (vs >> 255)])
    raise InvalidGatewayResponse(f"a signature has 64 or 65 bytes, got {len(signature)}")


def sign_digest(
    private_key: LocalAccount | bytes | str,
    digest: bytes,
    variant: CcipVariant = CcipVariant.ENSDOMAINS,
    *,
    compact: bool | None = None,
) -> bytes:
    """Sign a :func:`signature_hash` digest the way ``variant``'s verifier recovers it.

    ensdomains: the raw digest (no message prefix), 64-byte compact unless ``compact=False``.
    dm3: EIP-191 ``personal_sign`` of the 32 digest bytes, 65 bytes unless ``compact=True``.
    """
    account = _as_account(private_key)
    if variant is CcipVariant.DM3:
        signed = account.sign_message(encode_defunct(primitive=digest))
        default_compact = False
    else:
        signed = account.unsafe_sign_hash(Hash32(digest))
        default_compact = True
    signature = bytes(signed.signature)
    return compact_signature(signature) if (default_compact if compact is None else compact) else signature


def recover_signer(
    target: str | bytes,
    expires: int,
    request: bytes,
    result: bytes,
    signature: bytes,
    variant: CcipVariant = CcipVariant.ENSDOMAINS,
) -> str:
    """The checksummed address that signed an answer, recovered as ``variant``'s verifier does.

    Rejects high-s (malleable) signatures like OpenZeppelin's ECDSA.
    """
    digest = signature_hash(target, expires, request, result)
    if variant is CcipVariant.DM3:
        digest = keccak(b"\x19Ethereum Signed Message:\n32" + digest)
    full = expanded_signature(signature)
    r, s, v = int.from_bytes(full[:32], "big"), int.from_bytes(full[32:64], "big"), full[64]
    if s > _SECP256K1_N // 2:
        raise InvalidGatewayResponse("signature s value is not canonical")
    if v not in (27, 28):
        raise InvalidGatewayResponse("signature v is not 27 or 28")
    try:
        public_key = Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, EthKeysValidationError) as exc:
        raise InvalidGatewayResponse("signature does not recover to a key") from exc
    return to_checksum_address(public_key.to_canonical_address())


def encode_response(result: bytes, expires: int, signature: bytes) -> bytes:
    """The gateway's ``data``: ``abi.encode(bytes result, uint64 expires, bytes sig)``."""
    return abi_encode(_RESPONSE_TYPES, [result, expires, signature])


def decode_response(data: bytes) -> SignedResponse:
    """Inverse of :func:`encode_response`."""
    try:
        result, expires, signature = abi_decode(_RESPONSE_TYPES, data)
    except (DecodingError, ValueError, OverflowError) as exc:
        raise InvalidGatewayResponse(f"malformed gateway response: {exc}") from exc
    return SignedResponse(result=result, expires=expires, signature=signature)


def build_response(
    private_key: LocalAccount | bytes | str,
    *,
    sender: str | bytes,
    call_data: bytes,
    result: bytes,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
    expires: int | None = None,
    variant: CcipVariant = CcipVariant.ENSDOMAINS,
    compact: bool | None = None,
) -> bytes:
    """A complete signed gateway answer for ``call_data`` sent with ``{sender}`` = ``sender``.

    :param private_key: the gateway's signing key (an eth-account ``LocalAccount`` or raw key)
    :param sender: the resolver that raised the lookup; the signature is bound to it
    :param call_data: the exact request calldata (``{data}``), selector included
    :param result: the encoded record value, from :func:`encode_result`
    :param ttl: seconds of validity when ``expires`` is not given (default 300)
    :param now: unix time to count ``ttl`` from (default: the current time)
    :param expires: explicit expiry (unix seconds), overrides ``ttl``
    :param variant: ensdomains (raw digest, compact sig) or dm3 (EIP-191 prefixed, 65 bytes)
    :param compact: force 64-byte (True) or 65-byte (False) signatures
    """
    if expires is None:
        expires = int((time.time() if now is None else now) + ttl)
    digest = signature_hash(sender, expires, call_data, result)
    return encode_response(result, expires, sign_digest(private_key, digest, variant, compact=compact))


# -- OffchainLookup and the ENSIP-21 batch gateway -----------------------------------------------


def decode_offchain_lookup(revert_data: bytes) -> OffchainLookup:
    """Parse ``OffchainLookup(...)`` revert data (selector included)."""
    if revert_data[:4] != OFFCHAIN_LOOKUP_SELECTOR:
        raise InvalidCalldata("revert data is not an OffchainLookup")
    sender, urls, call_data, callback, extra_data = _decode(_OFFCHAIN_LOOKUP_TYPES, revert_data[4:], "OffchainLookup")
    return OffchainLookup(
        sender=to_checksum_address(sender), urls=tuple(urls), call_data=call_data, callback=callback, extra_data=extra_data
    )


def encode_offchain_lookup(lookup: OffchainLookup) -> bytes:
    """``OffchainLookup(...)`` revert data, selector included."""
    return OFFCHAIN_LOOKUP_SELECTOR + abi_encode(
        _OFFCHAIN_LOOKUP_TYPES,
        [parse_address(lookup.sender), list(lookup.urls), lookup.call_data, lookup.callback, lookup.extra_data],
    )


def is_batch_query(call_data: bytes) -> bool:
    """Whether ``call_data`` is an ENSIP-21 ``query((address,string[],bytes)[])`` call."""
    return call_data[:4] == BATCH_QUERY_SELECTOR


def decode_batch_query(call_data: bytes) -> list[BatchRequest]:
    """The requests of an ENSIP-21 ``query((address,string[],bytes)[])`` call."""
    if not is_batch_query(call_data):
        raise UnsupportedSelector("calldata is not a batch gateway query")
    (requests,) = _decode(_BATCH_QUERY_TYPES, call_data[4:], "batch gateway query")
    return [BatchRequest(sender=to_checksum_address(s), urls=tuple(u), data=d) for s, u, d in requests]


def encode_batch_query(requests: Iterable[BatchRequest]) -> bytes:
    """``query((address,string[],bytes)[])`` calldata."""
    rows = [(parse_address(r.sender), list(r.urls), r.data) for r in requests]
    return BATCH_QUERY_SELECTOR + abi_encode(_BATCH_QUERY_TYPES, [rows])


def encode_batch_response(failures: Sequence[bool], responses: Sequence[bytes]) -> bytes:
    """The batch gateway's ``data``: ``abi.encode(bool[] failures, bytes[] responses)``.

    For a failed request, its response is the error: :func:`encode_http_error` or :func:`encode_error`.
    """
    if len(failures) != len(responses):
        raise ValueError("failures and responses must have the same length")
    return abi_encode(["bool[]", "bytes[]"], [list(failures), list(responses)])


def decode_batch_response(data: bytes) -> tuple[list[bool], list[bytes]]:
    """Inverse of :func:`encode_batch_response`."""
    failures, responses = _decode(["bool[]", "bytes[]"], data, "batch gateway response")
    return list(failures), list(responses)


def encode_http_error(status: int, message: str) -> bytes:
    """ENSIP-21 ``HttpError(uint16 status, string message)`` error data."""
    return HTTP_ERROR_SELECTOR + abi_encode(["uint16", "string"], [status, message])


def encode_error(message: str) -> bytes:
    """Solidity ``Error(string)`` revert data."""
    return ERROR_SELECTOR + abi_encode(["string"], [message])


# -- HTTP side of EIP-3668 ---------------------------------------------------------------------


def gateway_call(url_template: str, sender: str | bytes, data: bytes) -> GatewayCall:
    """The request an EIP-3668 client sends for ``url_template``.

    ``{sender}`` and ``{data}`` are replaced by lower-case 0x-hex. A template with ``{data}`` is
    fetched with GET; otherwise the client POSTs ``{"data": …, "sender": …}`` as JSON.
    """
    sender_hex = "0x" + _address_bytes(sender).hex()
    data_hex = "0x" + bytes(data).hex()
    url = url_template.replace("{sender}", sender_hex).replace("{data}", data_hex)
    if "{data}" in url_template:
        return GatewayCall(method="GET", url=url, body=None)
    return GatewayCall(method="POST", url=url, body={"data": data_hex, "sender": sender_hex})


def decode_hex(value: Any, field: str) -> bytes:
    """Bytes of a 0x-prefixed hex string from a gateway request; names ``field`` when malformed."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) % 2:
        raise InvalidHex(f"{field} must be 0x-prefixed hex with an even number of digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise InvalidHex(f"{field} is not hex") from exc
