"""A device of an account: its own Ed25519 signing key, with which it logs in to delivery services
and keeps its own cursor there (``specs/delivery.md`` §2.7).

The wallet lists the account's devices (:meth:`~ensign.client.Client.set_devices`); a client made
with ``device=DeviceKey(…)`` logs in as that device. The device key is only a login key: messages
are still encrypted to the profile's keys, which every device of the account derives from the wallet
(or is given).
"""

from __future__ import annotations

from dataclasses import dataclass

from ensign.protocol.crypto import SigningKeyPair
from ensign.protocol.keys import random_signing_key_pair

__all__ = ["DeviceKey"]


@dataclass(frozen=True)
class DeviceKey:
    """One device's id and signing key pair (the secret half is never printed).

    :param id: 1-32 letters, digits, ``_`` or ``-``; unique within the account's device list
    :param signing: the device's Ed25519 key pair
    """

    id: str
    signing: SigningKeyPair

    @classmethod
    def generate(cls, device_id: str) -> DeviceKey:
        """A device with a fresh random key pair; keep ``signing.secret_key`` on the device."""
        return cls(device_id, random_signing_key_pair())

    @property
    def public_signing_key(self) -> str:
        """The public key to list for this device (base64)."""
        return self.signing.public_key
