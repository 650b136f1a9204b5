"""User and delivery-service profiles: the wallet signature, the ENS text record, the link hash.

A profile sits in the ENS text record ``network.dm3.profile`` (users) or
``network.dm3.deliveryService`` (delivery services) in one of these forms, all parsed by
:func:`parse_profile_record` without any I/O:

* ``data:application/json,<json>`` — what dm3 writes (canonical JSON, not percent-encoded). We
  also accept percent-encoded data, ``;base64`` data and a ``;charset=`` parameter;
* raw JSON — what dm3's own DS installers publish, which dm3's resolver cannot read;
* an ``http(s)`` link, normally carrying ``?dm3Hash=<sha256_hex of the canonical JSON>``, and
  ``ipfs://<cid>`` — returned as a :class:`ProfileLink`; the caller fetches the JSON and passes it to
  :func:`check_linked_profile` (or :func:`check_linked_delivery_service_profile`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

from ensign.errors import EncodingError, SchemaError, SignatureError
from ensign.protocol.canonical import parse_json, stringify
from ensign.protocol.encoding import checksum_address, sha256_hex
from ensign.protocol.keys import address_of_private_key, personal_sign, recover_personal_sign
from ensign.protocol.models import DeliveryServiceProfile, SignedUserProfile, UserProfile
from ensign.protocol.records import DELIVERY_SERVICE_RECORD_NAME, PROFILE_RECORD_NAME

__all__ = [
    "PROFILE_RECORD_NAME",
    "DELIVERY_SERVICE_RECORD_NAME",
    "IPFS_GATEWAY",
    "ParsedProfile",
    "ProfileLink",
    "ProfileRecord",
    "profile_creation_message",
    "sign_profile",
    "verify_profile",
    "profile_json_data_uri",
    "profile_hash",
    "parse_profile_record",
    "load_user_profile",
    "load_delivery_service_profile",
    "check_linked_profile",
    "check_linked_delivery_service_profile",
]

#: Where dm3 fetches ``ipfs://<cid>`` records from.
IPFS_GATEWAY = "https://www.ipfs.io/ipfs/"


def profile_creation_message(address: str, profile: UserProfile) -> str:
    """The text the owner wallet signs for a profile (dm3 ``getProfileCreationMessage``).

    ``address`` is the wallet's (written EIP-55); the grammar "wants you register" is dm3's.
    """
    return (
        "dm3.chat wants you register your dm3 profile with your Ethereum account:\n"
        f"{checksum_address(address)}\n\n"
        "This is required only once!\n"
        "(There is no paid transaction initiated. The signature is used off-chain only.)\n\n"
        "URI: https://dm3.chat\n"
        "Version: 1\n"
        f"dm3 Profile: {stringify(profile.to_json())}"
    )


def sign_profile(private_key_hex: str, profile: UserProfile) -> SignedUserProfile:
    """Sign ``profile`` with a wallet key (EIP-191 over :func:`profile_creation_message`)."""
    address = address_of_private_key(private_key_hex)
    signature = personal_sign(private_key_hex, profile_creation_message(address, profile))
    return SignedUserProfile(profile=profile, signature=signature)


def verify_profile(signed: SignedUserProfile, address: str) -> bool:
    """True iff ``signed.signature`` is ``address``'s signature of the profile creation message.

    A malformed signature is ``False``; a malformed ``address`` is an :class:`EncodingError`.
    """
    expected = checksum_address(address)
    try:
        signer = recover_personal_sign(profile_creation_message(expected, signed.profile), signed.signature)
    except SignatureError:
        return False
    return signer == expected


def _as_json(profile: SignedUserProfile | DeliveryServiceProfile | UserProfile | dict[str, Any]) -> Any:
    return profile if isinstance(profile, dict) else profile.to_json()


def profile_json_data_uri(
    profile: SignedUserProfile | DeliveryServiceProfile | UserProfile | dict[str, Any],
) -> str:
    """``"data:application/json," + stringify(profile)`` — dm3 ``createJsonDataUri`` (no escaping)."""
    return "data:application/json," + stringify(_as_json(profile))


def profile_hash(profile: SignedUserProfile | DeliveryServiceProfile | dict[str, Any]) -> str:
    """``dm3Hash``: :func:`sha256_hex` of the canonical JSON of the *whole* linked object."""
    return sha256_hex(stringify(_as_json(profile)))


# --- text records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedProfile:
    """A record that held the profile JSON itself (data URI or raw JSON), not yet validated."""

    value: dict[str, Any]


@dataclass(frozen=True)
class ProfileLink:
    """A record pointing elsewhere. ``url`` is what to fetch (for ``ipfs://`` records, dm3's gateway
    URL); ``dm3_hash`` is the link's ``dm3Hash`` query parameter, if any."""

    url: str
    dm3_hash: str | None = None
    kind: Literal["http", "ipfs"] = "http"


ProfileRecord = ParsedProfile | ProfileLink

# dm3's own data-URI grammar; scheme and mime type are matched case-insensitively (RFC 2397/2045).
_DATA_URI = re.compile(
    r"(?i:data):(?P<mime>[\w+.-]+/[\w+.-]+)(?:;charset=(?P<charset>[\w-]+))?(?:;(?P<encoding>\w+))?,(?P<data>.*)",
    re.DOTALL,
)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def parse_profile_record(text: str) -> ProfileRecord:
    """Parse an ENS profile text record (see the module docstring for the accepted forms).

    Returns :class:`ParsedProfile` with the JSON object (validate it with :func:`load_user_profile`
    or :func:`load_delivery_service_profile`) or a :class:`ProfileLink`. Raises
    :class:`EncodingError` naming the problem for anything else: other mime types or schemes,
    undecodable data, JSON that is not an object.
    """
    if not isinstance(text, str):
        raise EncodingError(f"profile record must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise EncodingError("profile record is empty")
    if stripped.startswith("{"):
        return ParsedProfile(_object(parse_json(stripped, what="profile record"), "profile record"))
    scheme = stripped.split(":", 1)[0].lower() if ":" in stripped else ""
    if scheme == "data":
        return ParsedProfile(_parse_data_uri(stripped))
    if scheme in ("http", "https"):
        return _parse_link(stripped)
    if scheme == "ipfs":
        cid = stripped[len("ipfs://") :] if stripped.lower().startswith("ipfs://") else ""
        if not cid:
            raise EncodingError("ipfs profile record has no content id")
        return ProfileLink(url=IPFS_GATEWAY + cid, dm3_hash=None, kind="ipfs")
    raise EncodingError(
        "profile record is neither a data: URI, an http(s) or ipfs link, nor a JSON object"
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EncodingError(f"{what} must hold a JSON object, got {type(value).__name__}")
    return value


def _parse_data_uri(text: str) -> dict[str, Any]:
    match = _DATA_URI.fullmatch(text)
    if match is None:
        raise EncodingError("profile record is not a well-formed data: URI")
    mime = match["mime"].lower()
    if mime != "application/json":
        raise EncodingError(f"profile data URI has mime type {mime}; only application/json is accepted")
    charset = match["charset"] or "utf-8"
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise EncodingError(f"profile data URI names an unknown charset {charset!r}") from None
    encoding = match["encoding"]
    if encoding is not None and encoding.lower() != "base64":
        raise EncodingError(f"profile data URI has unknown encoding {encoding!r}; only base64 is accepted")
    data = match["data"]

    if encoding is not None:
        # Base64 may itself be percent-encoded ('+', '/', '=' are reserved in URIs).
        raw_b64 = unquote_to_bytes(data) if "%" in data else data.encode("utf-8", "surrogatepass")
        try:
            raw = base64.b64decode(raw_b64, validate=True)
        except (binascii.Error, ValueError):
            raise EncodingError("profile data URI is marked base64 but its data is not base64") from None
        return _object(_decode_json(raw, codec), "profile data URI")

    # dm3 writes the JSON unescaped, and JSON may legitimately contain "%41"-like text inside a
    # string, so the data is read as-is first; percent-decoding is the fallback for escaped URIs.
    try:
        return _object(parse_json(data, what="profile data URI"), "profile data URI")
    except EncodingError:
        if not _PERCENT_ESCAPE.search(data):
            raise
    return _object(_decode_json(unquote_to_bytes(data), codec), "profile data URI")


def _decode_json(raw: bytes, codec: str) -> Any:
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        raise EncodingError(f"profile data URI is not valid {codec}") from None
    return parse_json(text, what="profile data URI")


def _parse_link(text: str) -> ProfileLink:
    try:
        parts = urlsplit(text)
    except ValueError:
        raise EncodingError("profile link is not a valid URL") from None
    if not parts.netloc:
        raise EncodingError("profile link has no host")
    hashes = parse_qs(parts.query).get("dm3Hash")
    return ProfileLink(url=text, dm3_hash=hashes[0] if hashes else None, kind="http")


# --- validation -----------------------------------------------------------------------------------


def load_user_profile(obj: Any) -> SignedUserProfile:
    """Validate a parsed record's JSON as a ``SignedUserProfile`` (:class:`SchemaError` if not).

    The wallet signature is not checked here: that needs the owner's address
    (:func:`verify_profile`).
    """
    return SignedUserProfile.from_json(obj)


def load_delivery_service_profile(obj: Any) -> DeliveryServiceProfile:
    """Validate a parsed record's JSON as a ``DeliveryServiceProfile``."""
    return DeliveryServiceProfile.from_json(obj)


def _check_link_hash(obj: Any, link: ProfileLink) -> None:
    if link.kind == "ipfs":
        return  # content-addressed by its CID; dm3 checks no dm3Hash here either
    if link.dm3_hash is None:
        raise SignatureError("profile link carries no dm3Hash, so the fetched profile cannot be checked")
    if not isinstance(obj, dict):
        raise SchemaError("linked profile must be a JSON object")
    if profile_hash(obj).lower() != link.dm3_hash.lower():
        raise SignatureError("linked profile does not match the link's dm3Hash")


def check_linked_profile(obj: Any, link: ProfileLink) -> SignedUserProfile:
    """Validate JSON fetched from ``link`` as a ``SignedUserProfile`` and check its ``dm3Hash``
    (over the whole object as fetched). :class:`SchemaError` / :class:`SignatureError`."""
    profile = load_user_profile(obj)
    _check_link_hash(obj, link)
    return profile


def check_linked_delivery_service_profile(obj: Any, link: ProfileLink) -> DeliveryServiceProfile:
    """As :func:`check_linked_profile`, for a ``DeliveryServiceProfile``."""
    profile = load_delivery_service_profile(obj)
    _check_link_hash(obj, link)
    return profile
