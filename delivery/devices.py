"""An account's devices: a list signed by the wallet, each device with its own signing key and cursor.

The device list
===============

The owner's wallet signs (EIP-191 ``personal_sign``, as the binding message) the whole list::

    {"message": {"deliveryService": "<this service's URL>", "ensName": "<name>",
                 "timestamp": <ms>, "topic": "setDevices",
                 "devices": [{"id": "laptop", "publicSigningKey": "<base64 Ed25519 public key>"}, …]},
     "signature": "0x<EIP-191 signature of stringify(message) by the account's address>"}

and sends it with ``PUT /account/<name>/devices``. The list replaces the previous one; an empty
list removes it. At most :data:`delivery.schemas.MAX_DEVICES` devices, ids unique (1-32 of
``A-Z a-z 0-9 _ -``), each key on one device only. Like every signed account message it is used
once, within :data:`delivery.accounts.REPLAY_WINDOW` of this service's clock, and must be newer
than the stored list and than the account's creation, so an old list cannot be replayed over a
newer one.

Logging in
==========

A device logs in with the challenge of ``GET /auth/<name>`` signed by its own key, naming itself:
``POST /auth/<name> {challenge, signature, device: "<id>"}``; its session carries the device id and
the time its id got that key (``since``). Without ``device`` the profile's signing key logs in, as
dm3 clients do: on an account without a device list as always (the profile key is the one implicit
device); on an account with a list only when a listed device carries the profile's key, and the
session is that device's (403 ``device_not_listed`` otherwise). To keep a dm3 client, list the
profile key as a device (the SDK does when it starts a list).

Cursors
=======

Each listed device acknowledges for itself: a fetch skips what the session's device has
acknowledged, and a message leaves the queue when every listed device has acknowledged it or its
TTL ends (:mod:`delivery.queue`, ``{prefix}seen:{<tag>}`` in :mod:`delivery.keys`). Pushes go to
every socket of the account, so every device gets them.

Removing a device (a new list without it) drops its acknowledgements, so a message only it was
missing leaves the queue at once, and ends its sessions and sockets on every process: the same
script publishes on the account's sessions channel, and each session is checked against the list
(a removed id, or an id given another key since, is ``session_stale``). Setting the first list ends
the sessions made without a device; removing the list ends every device's session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ensign.protocol.canonical import stringify
from ensign.protocol.schema import load

from .errors import InvalidMessage
from .schemas import SIGNED_DEVICES

__all__ = ["NO_DEVICES", "Device", "DeviceList", "SignedDevices"]


@dataclass(frozen=True, slots=True)
class Device:
    """One listed device: its id, Ed25519 public signing key (base64), and the time (ms) of the
    list that first gave this id this key; sessions carry it, so re-keying an id ends them."""

    id: str
    key: str
    since: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "publicSigningKey": self.key, "since": self.since}


@dataclass(frozen=True, slots=True)
class DeviceList:
    """An account's device list as stored (the account hash's ``devices`` field)."""

    at: int
    devices: tuple[Device, ...]

    @classmethod
    def from_stored(cls, text: str) -> DeviceList:
        obj = json.loads(text)
        return cls(
            at=int(obj["at"]),
            devices=tuple(Device(str(d["id"]), str(d["key"]), int(d["since"])) for d in obj["list"]),
        )

    def to_stored(self) -> str:
        return stringify(
            {"at": self.at, "list": [{"id": d.id, "key": d.key, "since": d.since} for d in self.devices]}
        )

    def get(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def with_key(self, key: str) -> Device | None:
        return next((d for d in self.devices if d.key == key), None)

    def replaced(self, at: int, entries: list[tuple[str, str]]) -> DeviceList:
        """The list of ``entries`` (id, key) signed at ``at``: a device keeping its id and key
        keeps its ``since`` (and its sessions), any other starts at ``at``."""
        kept = {(d.id, d.key): d.since for d in self.devices}
        return DeviceList(at, tuple(Device(i, k, kept.get((i, k), at)) for i, k in entries))

    def to_json(self) -> dict[str, Any]:
        return {"updatedAt": self.at, "devices": [d.to_json() for d in self.devices]}


NO_DEVICES = DeviceList(0, ())


@dataclass(frozen=True)
class SignedDevices:
    """A parsed, not yet verified device list message (module docstring)."""

    delivery_service: str
    ens_name: str
    timestamp: int
    devices: list[tuple[str, str]]
    payload: str
    signature: str

    @classmethod
    def from_body(cls, body: object) -> SignedDevices:
        """Parse a device list message (:data:`delivery.schemas.SIGNED_DEVICES`); 400
        ``invalid_message`` names every bad field."""
        loaded = load(SIGNED_DEVICES, body, "device list message", error=InvalidMessage)
        message = loaded["message"]
        return cls(
            delivery_service=message["deliveryService"],
            ens_name=message["ensName"],
            timestamp=message["timestamp"],
            devices=[(d["id"], d["publicSigningKey"]) for d in message["devices"]],
            payload=stringify(body["message"]),  # type: ignore[index]
            signature=loaded["signature"],
        )
