"""The ENS text records dm3 reads, defined once for every package (no imports: cheap to load)."""

from __future__ import annotations

__all__ = ["PROFILE_RECORD_NAME", "DELIVERY_SERVICE_RECORD_NAME"]

#: A user's dm3 profile (``data:`` URI, link or JSON).
PROFILE_RECORD_NAME = "network.dm3.profile"
#: A delivery service's profile: its public keys and URL.
DELIVERY_SERVICE_RECORD_NAME = "network.dm3.deliveryService"
