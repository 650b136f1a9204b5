"""Every error the profile backend answers with, built on :mod:`ensign.errors`.

    class (base in ensign.errors)       HTTP  code
    InvalidRequest                       400  invalid_request
    ├── InvalidJson                      400  invalid_json          (ensign.web.read_json)
    ├── InvalidName                      400  invalid_name          (not one normalised label under the domain)
    ├── InvalidAddress                   400  invalid_address
    ├── UnsupportedDomain                400  unsupported_domain    (a name under a domain this backend does not serve)
    ├── StaleTimestamp                   400  stale_timestamp       (a signed claim outside the time window)
    └── ProtocolError                    400  …                     (SchemaError ``invalid_schema`` for a bad body,
                                                                     EncodingError, SignatureError)
    NotFound                             404  not_found
    Conflict                             409  conflict
    ├── AliasTaken                       409  alias_taken
    ├── AliasLimit                       409  alias_limit
    ├── Replayed                         409  replayed              (a signed claim or release used twice)
    └── ProfileSuperseded                409  profile_superseded    (an older profile than the one stored)
    ServiceUnavailable                   503  unavailable           (Redis unreachable)

:func:`ensign.web.error_middleware` turns each into ``{"error": code, "message": text}`` with its status.
"""

from __future__ import annotations

from ensign.errors import Conflict, InvalidRequest

__all__ = ["AliasLimit", "AliasTaken", "ProfileSuperseded", "Replayed", "StaleTimestamp", "UnsupportedDomain"]


class UnsupportedDomain(InvalidRequest):
    code = "unsupported_domain"


class StaleTimestamp(InvalidRequest):
    code = "stale_timestamp"


class AliasTaken(Conflict):
    code = "alias_taken"


class AliasLimit(Conflict):
    code = "alias_limit"


class Replayed(Conflict):
    code = "replayed"


class ProfileSuperseded(Conflict):
    code = "profile_superseded"
