"""What the SDK's calls return: plain frozen dataclasses over the protocol's wire types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ensign.errors import EnsignError
from ensign.protocol.models import EncryptionEnvelop, Message, Postmark

from ._errors import DeliveryAttempt

__all__ = [
    "NameRegistration",
    "DeliveryAccount",
    "SentMessage",
    "ReceivedMessage",
    "RejectedEnvelope",
    "InboxPage",
    "ListedDevice",
    "DeviceList",
]


@dataclass(frozen=True)
class NameRegistration:
    """The backend's answer to a published profile or a claimed alias.

    :param name: the registered name: the address name ``0x<address>.<addr domain>``, or the alias
    :param address: the wallet's EIP-55 address
    :param status: ``"created"``, ``"replaced"``, ``"unchanged"`` (profiles), ``"claimed"``, ``"unchanged"`` (aliases)
    """

    name: str
    address: str
    status: str


@dataclass(frozen=True)
class DeliveryAccount:
    """An account at a delivery service (``specs/delivery.md`` §2.3).

    :param delivery_service: the service's ENS name
    :param address: the account's EIP-55 address (every name of the address shares it)
    :param created_at: creation time, ms since the epoch
    :param origin: ``"signed"`` (a signed createAccount) or ``"profile"`` (dm3 sign-up)
    :param settings: the owner's settings as the service stores them
    """

    delivery_service: str
    address: str
    created_at: int
    origin: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, delivery_service: str, body: Mapping[str, Any]) -> DeliveryAccount:
        return cls(
            delivery_service=delivery_service,
            address=str(body["account"]),
            created_at=int(body["createdAt"]),
            origin=str(body["origin"]),
            settings=dict(body.get("settings") or {}),
        )


@dataclass(frozen=True)
class SentMessage:
    """A message a delivery service of the receiver accepted.

    :param id: the envelope's hash, by which the receiver acknowledges it
    :param receiver: the name it was sent to, as given
    :param delivery_service: the ENS name of the service that took it
    :param message: the signed plaintext message
    :param failed_attempts: services tried before, in the receiver's profile order, and why they failed
    """

    id: str
    receiver: str
    delivery_service: str
    message: Message
    failed_attempts: tuple[DeliveryAttempt, ...] = ()


@dataclass(frozen=True)
class ReceivedMessage:
    """A received message whose signature and postmark were verified.

    :param id: the envelope's hash; :meth:`~ensign.client.Client.ack` takes the message or this
    :param sender: ``metadata.from``, the name the sender wrote (its profile's key signed the message)
    :param receiver: ``metadata.to``, the name the sender wrote for us
    :param text: the message text (``None`` for types without one, e.g. ``DELETE_REQUEST``)
    :param type: dm3's message type, ``"NEW"``, ``"REPLY"``, …
    :param timestamp: the sender's timestamp, ms
    :param received_at: the delivery service's postmarked receive time, ms
    :param delivery_service: ENS name of the service it came from (whose key signed the postmark)
    :param message: the whole decrypted message
    :param envelope: the envelope as stored by the service
    :param postmark: the decrypted postmark
    """

    id: str
    sender: str
    receiver: str
    text: str | None
    type: str
    timestamp: int
    received_at: int
    delivery_service: str
    message: Message
    envelope: EncryptionEnvelop
    postmark: Postmark


@dataclass(frozen=True)
class RejectedEnvelope:
    """An envelope in the inbox that failed a check (bad signature, postmark, unknown sender, …).

    It stays queued until acknowledged or expired: pass it to :meth:`~ensign.client.Client.ack`
    to drop it. ``id`` is ``None`` when the envelope is too malformed to carry one.
    """

    id: str | None
    delivery_service: str
    error: EnsignError
    envelope: Any


@dataclass(frozen=True)
class InboxPage:
    """One page of the inbox, oldest first.

    :param messages: the verified messages
    :param rejected: envelopes that failed verification
    :param next_cursor: pass to :meth:`~ensign.client.Client.fetch` for the next page; ``None`` on the last
    """

    messages: tuple[ReceivedMessage, ...]
    rejected: tuple[RejectedEnvelope, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class ListedDevice:
    """A device on an account's device list at a delivery service.

    :param id: the device's id
    :param public_signing_key: its Ed25519 public key (base64), with which it logs in
    :param since: when (ms) this id got this key; re-keying an id ends its sessions
    """

    id: str
    public_signing_key: str
    since: int


@dataclass(frozen=True)
class DeviceList:
    """An account's device list at a delivery service (``specs/delivery.md`` §2.7).

    :param delivery_service: the service's ENS name
    :param devices: the listed devices; empty when the account has no list (the profile key is its
        one device)
    :param updated_at: the timestamp (ms) of the wallet-signed list, 0 without one
    :param device: the id of the device whose session read it (``None``: no device, or not read
        with a session)
    :param released_messages: after a change, how many queued messages left because only a
        removed device was missing them
    """

    delivery_service: str
    devices: tuple[ListedDevice, ...]
    updated_at: int
    device: str | None = None
    released_messages: int = 0

    @classmethod
    def from_json(cls, delivery_service: str, body: Mapping[str, Any]) -> DeviceList:
        return cls(
            delivery_service=delivery_service,
            devices=tuple(
                ListedDevice(str(d["id"]), str(d["publicSigningKey"]), int(d["since"])) for d in body["devices"]
            ),
            updated_at=int(body["updatedAt"]),
            device=body.get("device"),
            released_messages=int(body.get("releasedMessages", 0)),
        )
