"""A delivery service's other signing keys during a key rotation, beside its dm3 profile.

dm3's ``network.dm3.deliveryService`` profile names one signing key, but a rotation has two live
at once: postmarks signed with the old key stay in queues (and are verified when read) for up to
the message TTL, and while the operator switches its processes over some sign with either key. The
operator lists the other key(s) in the text record ``eth.ensign.deliveryServiceKeys``
(:data:`~ensign.protocol.records.DELIVERY_SERVICE_KEYS_RECORD_NAME`) of the same name, as
``data:application/json,{"publicSigningKeys": ["<base64>", …]}``; a receiver accepts a postmark
signed by the profile's key or one of these. It is a record of its own because dm3's profile
schema is closed; it is trusted as the profile is, because only the name's owner sets it.
"""

from __future__ import annotations

from ensign.errors import EncodingError, SchemaError
from ensign.protocol.canonical import stringify
from ensign.protocol.encoding import b64decode
from ensign.protocol.profile import ParsedProfile, parse_profile_record
from ensign.protocol.records import DELIVERY_SERVICE_KEYS_RECORD_NAME

__all__ = ["DELIVERY_SERVICE_KEYS_RECORD_NAME", "MAX_OTHER_KEYS", "parse_delivery_service_keys_record", "delivery_service_keys_record"]

#: Most other signing keys one record lists.
MAX_OTHER_KEYS = 4


def parse_delivery_service_keys_record(text: str) -> tuple[str, ...]:
    """The base64 public signing keys of a record (``data:`` URI or raw JSON), checked for shape."""
    record = parse_profile_record(text)
    if not isinstance(record, ParsedProfile):
        raise EncodingError("a delivery-service keys record holds its keys itself, not a link")
    keys = record.value.get("publicSigningKeys")
    if set(record.value) != {"publicSigningKeys"} or not isinstance(keys, list) or len(keys) > MAX_OTHER_KEYS:
        raise SchemaError(f"a delivery-service keys record is {{\"publicSigningKeys\": [at most {MAX_OTHER_KEYS} keys]}}")
    for key in keys:
        if not isinstance(key, str):
            raise SchemaError("publicSigningKeys holds base64 strings")
        b64decode(key, length=32, what="a public signing key")
    return tuple(keys)


def delivery_service_keys_record(public_signing_keys: list[str] | tuple[str, ...]) -> str:
    """The record's value for these keys (``data:application/json,…``)."""
    return "data:application/json," + stringify({"publicSigningKeys": list(public_signing_keys)})
