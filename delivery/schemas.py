"""The JSON request bodies of the delivery service's REST routes, as marshmallow schemas (one
validation style, see :mod:`ensign.protocol.schema`): unknown fields are refused and every error
names its field (400 ``invalid_schema``).

``POST /auth/<name>``                               ``{challenge: string, signature: string,
                                                    device?: string}``
``POST /delivery/messages/<name>/syncAcknowledgements``
                                                    ``{acknowledgements: [{contactAddress: string,
                                                    messageHash: string (1–256)}]}``, at most
                                                    :data:`MAX_ACKS`

``POST|DELETE /account/<name>``, ``PUT …/settings``  ``{message: {deliveryService, ensName, timestamp,
                                                    topic, settings?}, signature}``
                                                    (:data:`SIGNED_ACCOUNT_MESSAGE`, 400
                                                    ``invalid_message``)
``POST /account/<name>/binding``                    ``{message: {deliveryService, ensName, timestamp,
                                                    topic: "bindProfile", publicSigningKey}, signature}``
                                                    (:data:`SIGNED_BINDING`, 400 ``invalid_message``)
``PUT /account/<name>/devices``                     ``{message: {deliveryService, ensName, timestamp,
                                                    topic: "setDevices", devices: [{id,
                                                    publicSigningKey}]}, signature}`` (at most
                                                    :data:`MAX_DEVICES`; :data:`SIGNED_DEVICES`,
                                                    400 ``invalid_message``)
account settings                                    :func:`settings_schema` (400 ``invalid_settings``)

Envelopes are checked by :mod:`ensign.protocol.models`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, cast

from marshmallow import ValidationError, fields, validate, validates_schema

from ensign.protocol.encoding import is_address
from ensign.protocol.schema import Base64, Pattern, Strict, Text

__all__ = [
    "MAX_ACKS",
    "MAX_SPAM_AMOUNT_DIGITS",
    "NOTIFICATION_TYPES",
    "SIGNED_ACCOUNT_MESSAGE",
    "SIGNED_BINDING",
    "SIGNED_DEVICES",
    "DEVICE_ID",
    "MAX_DEVICES",
    "DeviceEntry",
    "DevicesMessage",
    "SignedDevicesBody",
    "TOPICS",
    "AccountMessage",
    "Acknowledgement",
    "Acknowledgements",
    "Amount",
    "BindingMessage",
    "ChallengeAnswer",
    "NotificationChannel",
    "Notifications",
    "SignedAccountMessageBody",
    "SignedBindingBody",
    "SpamFilterRules",
    "StrictBool",
    "TokenBalance",
    "settings_schema",
]

MAX_ACKS = 10_000  # acknowledgements per request
TOPICS = ("createAccount", "deleteAccount", "updateSettings")
MAX_SPAM_AMOUNT_DIGITS = 78  # a uint256 has at most 78 decimal digits
NOTIFICATION_TYPES = ("EMAIL", "PUSH")
MAX_RECIPIENT_VALUE = 2048  # characters of a notification channel's address


#: Devices on one account's device list (:mod:`delivery.devices`).
MAX_DEVICES = 16
#: A device id: 1 to 32 letters, digits, ``_`` or ``-``.
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ChallengeAnswer(Strict):
    challenge = Text(required=True)
    signature = Text(required=True)
    # The device logging in with its own key; absent = the profile's signing key (dm3 clients).
    device = Pattern(DEVICE_ID, "a device id (1-32 letters, digits, _ or -)")


class Acknowledgement(Strict):
    contactAddress = Text(required=True)  # noqa: N815 - dm3's field names
    messageHash = Text(required=True, max_length=256)  # noqa: N815


class Acknowledgements(Strict):
    acknowledgements = fields.List(
        fields.Nested(Acknowledgement),
        required=True,
        validate=validate.Length(max=MAX_ACKS, error=f"at most {MAX_ACKS} acknowledgements per request"),
    )


# -- signed account messages and settings --------------------------------------------------------


class StrictBool(fields.Boolean):
    """A JSON ``true`` or ``false``, nothing that merely looks like one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be a boolean")
        return value


class Amount(fields.Field[str]):
    """A non-negative wei amount as dm3 writes it: a decimal or ``0x`` hex string, or an integer;
    loaded as its decimal string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        if isinstance(value, str) and 0 < len(value) <= MAX_SPAM_AMOUNT_DIGITS + 2:
            try:
                number = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
            except ValueError:
                number = -1
            if number >= 0 and value.strip() == value:
                return str(number)
        raise ValidationError("must be a non-negative amount in decimal or 0x hex")


def _address(value: str) -> None:
    if not is_address(value):
        raise ValidationError("must be an address")


def _one_per_type(channels: list[dict[str, Any]]) -> None:
    types = [channel["type"] for channel in channels]
    if len(set(types)) != len(types):
        raise ValidationError("one channel per type")


class TokenBalance(Strict):
    address = Text(required=True, validate=_address)
    amount = Amount(required=True)


class SpamFilterRules(Strict):
    minNonce = fields.Integer(strict=True, allow_none=True, validate=validate.Range(0, 2**64 - 1))  # noqa: N815
    minBalance = Amount(allow_none=True)  # noqa: N815
    minTokenBalance = fields.Nested(TokenBalance, allow_none=True)  # noqa: N815


class NotificationChannel(Strict):
    type = Text(required=True, validate=validate.OneOf(NOTIFICATION_TYPES))
    recipientValue = Text(required=True, max_length=MAX_RECIPIENT_VALUE)  # noqa: N815


class Notifications(Strict):
    enabled = StrictBool()
    channels = fields.List(
        fields.Nested(NotificationChannel),
        validate=[validate.Length(max=len(NOTIFICATION_TYPES)), _one_per_type],
    )


@functools.lru_cache(maxsize=16)
def settings_schema(size_limit: int, ttl_limit: int, queued_limit: int = 2**53, bytes_limit: int = 2**53) -> Strict:
    """The schema of an account's settings under this service's limits (every key optional;
    ``null`` for a limit means the service default)."""
    schema = Strict.from_dict(
        {
            "maxMessageSize": fields.Integer(strict=True, allow_none=True, validate=validate.Range(1024, size_limit)),
            "messageTTL": fields.Integer(strict=True, allow_none=True, validate=validate.Range(60, ttl_limit)),
            "maxQueuedMessages": fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, queued_limit)),
            "maxQueuedBytes": fields.Integer(strict=True, allow_none=True, validate=validate.Range(1024, bytes_limit)),
            "spamFilterRules": fields.Nested(SpamFilterRules),
            "notifications": fields.Nested(Notifications),
        },
        name="AccountSettings",
    )
    return cast(Strict, schema())


class AccountMessage(Strict):
    deliveryService = Text(required=True)  # noqa: N815
    ensName = Text(required=True)  # noqa: N815
    timestamp = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    topic = Text(required=True, validate=validate.OneOf(TOPICS))
    settings = fields.Dict(allow_none=True)

    @validates_schema
    def _no_settings_on_delete(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("topic") == "deleteAccount" and data.get("settings") is not None:
            raise ValidationError("a deleteAccount message carries no settings", "settings")


class SignedAccountMessageBody(Strict):
    message = fields.Nested(AccountMessage, required=True)
    signature = Text(required=True)


SIGNED_ACCOUNT_MESSAGE = SignedAccountMessageBody()


class BindingMessage(Strict):
    deliveryService = Text(required=True)  # noqa: N815
    ensName = Text(required=True)  # noqa: N815
    timestamp = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    topic = Text(required=True, validate=validate.Equal("bindProfile", error="must be bindProfile"))
    # An Ed25519 public key, base64: 44 characters; checked against the published profile.
    publicSigningKey = Text(required=True, max_length=128)  # noqa: N815


class SignedBindingBody(Strict):
    message = fields.Nested(BindingMessage, required=True)
    signature = Text(required=True, max_length=200)


SIGNED_BINDING = SignedBindingBody()


def _unique_devices(devices: list[dict[str, Any]]) -> None:
    ids = [device["id"] for device in devices]
    keys = [device["publicSigningKey"] for device in devices]
    if len(set(ids)) != len(ids):
        raise ValidationError("device ids must be unique")
    if len(set(keys)) != len(keys):
        raise ValidationError("each device needs its own signing key")


class DeviceEntry(Strict):
    id = Pattern(DEVICE_ID, "a device id (1-32 letters, digits, _ or -)", required=True)
    publicSigningKey = Base64(32, required=True)  # noqa: N815 - an Ed25519 public key


class DevicesMessage(Strict):
    deliveryService = Text(required=True)  # noqa: N815
    ensName = Text(required=True)  # noqa: N815
    timestamp = fields.Integer(strict=True, required=True, validate=validate.Range(min=0))
    topic = Text(required=True, validate=validate.Equal("setDevices", error="must be setDevices"))
    devices = fields.List(
        fields.Nested(DeviceEntry),
        required=True,
        validate=[
            validate.Length(max=MAX_DEVICES, error=f"at most {MAX_DEVICES} devices per account"),
            _unique_devices,
        ],
    )


class SignedDevicesBody(Strict):
    message = fields.Nested(DevicesMessage, required=True)
    signature = Text(required=True, max_length=200)


SIGNED_DEVICES = SignedDevicesBody()
