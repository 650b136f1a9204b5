"""The ENS text records dm3 reads, defined once for every package (no imports: cheap to load)."""

from __future__ import annotations

__all__ = [
    "PROFILE_RECORD_NAME",
    "DELIVERY_SERVICE_RECORD_NAME",
    "REVOCATION_RECORD_NAME",
    "DELIVERY_SERVICE_KEYS_RECORD_NAME",
]

#: A user's dm3 profile (``data:`` URI, link or JSON).
PROFILE_RECORD_NAME = "network.dm3.profile"
#: A delivery service's profile: its public keys and URL.
DELIVERY_SERVICE_RECORD_NAME = "network.dm3.deliveryService"
#: Ensign's list of an address's revoked profile signing keys, signed by the wallet
#: (:mod:`ensign.protocol.revocation`). A record of its own, so dm3's profile JSON stays dm3's.
REVOCATION_RECORD_NAME = "eth.ensign.revokedKeys"
#: Ensign's other key sets of a delivery service during a key rotation (next or previous), whose
#: postmarks clients accept beside the profile's (:mod:`ensign.protocol.revocation` has the shape).
DELIVERY_SERVICE_KEYS_RECORD_NAME = "eth.ensign.deliveryServiceKeys"
