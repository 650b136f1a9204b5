"""Every error the CCIP-Read gateway answers with. The gateway adds no classes of its own: it
answers with the ground floor's and the ENS client's, gathered here so its tree is in one place.

    class                                         HTTP  code
    ensign.errors.InvalidRequest                   400  invalid_request        (``"Invalid request format"``, a batch too large)
    ├── ensign.errors.InvalidJson                  400  invalid_json           (the POST body is not a JSON object)
    ├── ensign.errors.InvalidName                  400  invalid_name
    │   └── ensign.ens.errors.NameNotNormalized    400  name_not_normalized
    ├── ensign.errors.InvalidAddress               400  invalid_address
    ├── ensign.ens.errors.InvalidDnsName           400  invalid_dns_name
    ├── ensign.ens.errors.InvalidCalldata          400  invalid_calldata
    ├── ensign.ens.errors.UnsupportedRecord        400  unsupported_record
    ├── ensign.ens.errors.UnsupportedSelector      400  unsupported_selector
    ├── ensign.ens.errors.NamehashMismatch         400  namehash_mismatch
    ├── ensign.ens.errors.InvalidHex               400  invalid_hex
    └── ensign.ens.errors.InvalidGatewayResponse   400  invalid_response
    ensign.errors.NotFound                         404  not_found              (an outer selector the gateway lacks)
    ensign.errors.ServiceUnavailable               503  unavailable            (the record source cannot answer)
    ensign.errors.EnsignError                      500  internal               (anything unexpected)

ccip-read clients read ``message``; a 4xx stops them, a 503 sends them to the resolver's next URL
(the table in :mod:`resolver.gateway` says when each is given).
"""

from __future__ import annotations

from ensign.ens.errors import (
    InvalidCalldata,
    InvalidDnsName,
    InvalidGatewayResponse,
    InvalidHex,
    NamehashMismatch,
    NameNotNormalized,
    UnsupportedRecord,
    UnsupportedSelector,
)
from ensign.errors import (
    EnsignError,
    InvalidAddress,
    InvalidJson,
    InvalidName,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
)

__all__ = [
    "EnsignError",
    "InvalidAddress",
    "InvalidCalldata",
    "InvalidDnsName",
    "InvalidGatewayResponse",
    "InvalidHex",
    "InvalidJson",
    "InvalidName",
    "InvalidRequest",
    "NameNotNormalized",
    "NamehashMismatch",
    "NotFound",
    "ServiceUnavailable",
    "UnsupportedRecord",
    "UnsupportedSelector",
]
