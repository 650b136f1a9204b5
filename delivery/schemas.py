"""The JSON request bodies of the delivery service's REST routes, as marshmallow schemas (one
validation style, see :mod:`ensign.protocol.schema`): unknown fields are refused and every error
names its field (400 ``invalid_schema``).

``POST /auth/<name>``                               ``{challenge: string, signature: string}``
``POST /delivery/messages/<name>/syncAcknowledgements``
                                                    ``{acknowledgements: [{contactAddress: string,
                                                    messageHash: string (1–256)}]}``, at most
                                                    :data:`MAX_ACKS`

Envelopes are checked by :mod:`ensign.protocol.models`, signed account messages and settings by
:mod:`delivery.accounts` (their own codes, ``invalid_message`` and ``invalid_settings``).
"""

from __future__ import annotations

from marshmallow import fields, validate

from ensign.protocol.schema import Strict, Text

__all__ = ["MAX_ACKS", "Acknowledgement", "Acknowledgements", "ChallengeAnswer"]

MAX_ACKS = 10_000  # acknowledgements per request


class ChallengeAnswer(Strict):
    challenge = Text(required=True)
    signature = Text(required=True)


class Acknowledgement(Strict):
    contactAddress = Text(required=True)  # noqa: N815 - dm3's field names
    messageHash = Text(required=True, max_length=256)  # noqa: N815


class Acknowledgements(Strict):
    acknowledgements = fields.List(
        fields.Nested(Acknowledgement),
        required=True,
        validate=validate.Length(max=MAX_ACKS, error=f"at most {MAX_ACKS} acknowledgements per request"),
    )

