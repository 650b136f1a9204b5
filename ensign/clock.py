"""The clock every service is given: seconds since the epoch as a float.

Each ``create_app`` takes ``clock=`` (default :func:`system_clock`) and keeps it under its
``clock_key``; every time-dependent decision of the service (signature expiries, replay windows,
token expiry, postmarks, message TTLs) reads that one clock, so tests can move time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "system_clock"]

Clock = Callable[[], float]


def system_clock() -> float:
    """The wall clock, seconds since the epoch."""
    return time.time()
