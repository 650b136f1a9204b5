"""The ENS client's errors: bad names, calldata and gateway answers (all HTTP 400, JSON-RPC -32602).

    ensign.errors.InvalidRequest            400  invalid_request
    ├── ensign.errors.InvalidName           400  invalid_name
    │   └── NameNotNormalized               400  name_not_normalized   (a name in calldata is not ENSIP-15 normal)
    ├── ensign.errors.InvalidAddress        400  invalid_address       (an address record is not 20 bytes)
    ├── InvalidDnsName                      400  invalid_dns_name      (DNS wire-format name: labels, length, UTF-8)
    ├── InvalidCalldata                     400  invalid_calldata      (ABI calldata that does not decode)
    ├── UnsupportedRecord                   400  unsupported_record    (a resolver function no gateway serves)
    ├── UnsupportedSelector                 400  unsupported_selector  (a selector the gateway has no code for)
    ├── NamehashMismatch                    400  namehash_mismatch     (the name and the node of a call differ)
    ├── InvalidHex                          400  invalid_hex           (a field that must be 0x-hex is not)
    ├── InvalidGatewayResponse              400  invalid_response      (a gateway's answer or signature is malformed)
    └── InvalidProfile                      400  invalid_profile       (a dm3 profile record that does not parse)
"""

from __future__ import annotations

from ensign.errors import InvalidName, InvalidRequest

__all__ = [
    "InvalidCalldata",
    "InvalidDnsName",
    "InvalidGatewayResponse",
    "InvalidHex",
    "InvalidProfile",
    "NameNotNormalized",
    "NamehashMismatch",
    "UnsupportedRecord",
    "UnsupportedSelector",
]


class NameNotNormalized(InvalidName):
    code = "name_not_normalized"


class InvalidDnsName(InvalidRequest):
    code = "invalid_dns_name"


class InvalidCalldata(InvalidRequest):
    code = "invalid_calldata"


class UnsupportedRecord(InvalidRequest):
    code = "unsupported_record"


class UnsupportedSelector(InvalidRequest):
    code = "unsupported_selector"


class NamehashMismatch(InvalidRequest):
    code = "namehash_mismatch"


class InvalidHex(InvalidRequest):
    code = "invalid_hex"


class InvalidGatewayResponse(InvalidRequest):
    code = "invalid_response"


class InvalidProfile(InvalidRequest):
    code = "invalid_profile"
