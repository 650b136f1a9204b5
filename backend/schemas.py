"""The request bodies of the profile backend, as marshmallow schemas (one validation style, see
:mod:`ensign.protocol.schema`): unknown fields are refused and every error names its field.

``POST /profile/address``     ``{signedUserProfile: object, address: string, subdomain: string}``
``POST /profile/name``        ``{signature, addressName, dm3Name: string, timestamp?: integer}``
``POST /profile/deleteName``  ``{signature, dm3Name: string, timestamp?: integer}``
``POST /auth/{ensName}``        ``{challenge, signature: string}`` (storage login)
``GET /storage/docs/…/history`` ``?offset=&limit=``
``/storage/new/{ensName}/…``     dm3's conversation-storage bodies and ``?pageSize=&offset=``, as
                                dm3's backend declares them (``Dm3*``)

The profile object itself is checked by :meth:`ensign.protocol.models.SignedUserProfile.from_json`.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from ensign.protocol.canonical import MAX_SAFE_INTEGER
from ensign.protocol.schema import Strict, Text

__all__ = [
    "MAX_BATCH",
    "MAX_DM3_TEXT",
    "MAX_HISTORY_PAGE",
    "MAX_NAME",
    "MAX_PAGE",
    "MAX_SIGNATURE",
    "AliasClaim",
    "AliasRelease",
    "ChallengeAnswer",
    "Dm3AddConversation",
    "Dm3AddMessage",
    "Dm3AddMessageBatch",
    "Dm3ClearHalted",
    "Dm3EditMessageBatch",
    "Dm3MessageRecord",
    "Dm3Page",
    "Dm3ToggleHide",
    "HistoryPage",
    "ProfileRegistration",
]

MAX_NAME = 255  # characters of a name in a body
MAX_SIGNATURE = 200  # base64 of 64 bytes is 88 characters
#: Largest page of dm3's conversations or messages.
MAX_PAGE = 1000
#: Most messages in one dm3 addMessageBatch or editMessageBatch.
MAX_BATCH = 1000
#: Longest dm3 encrypted contact name, profile location or message id, characters.
MAX_DM3_TEXT = 4096
#: Most revisions one history page returns.
MAX_HISTORY_PAGE = 100


class ProfileRegistration(Strict):
    signedUserProfile = fields.Dict(required=True)  # noqa: N815 - dm3's field names
    address = Text(required=True, max_length=64)
    subdomain = Text(required=True, max_length=MAX_NAME)


class AliasRelease(Strict):
    signature = Text(required=True, max_length=MAX_SIGNATURE)
    dm3Name = Text(required=True, max_length=MAX_NAME)  # noqa: N815
    timestamp = fields.Integer(strict=True)


class AliasClaim(AliasRelease):
    addressName = Text(required=True, max_length=MAX_NAME)  # noqa: N815


# --- the user's storage (dm3's JSON schemas, additionalProperties false) ---------------------------


class _StrictBoolean(fields.Boolean):
    """A JSON boolean only: marshmallow's own also takes ``"true"``, ``1`` and the like."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be a boolean")
        return value


def _text(max_length: int = MAX_DM3_TEXT) -> Text:
    # Text refuses lone surrogates, which could not be stored as UTF-8.
    return Text(required=True, max_length=max_length)


class Dm3MessageRecord(Strict):
    messageId = _text()
    createdAt = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_SAFE_INTEGER))
    encryptedEnvelopContainer = Text(required=True)
    isHalted = _StrictBoolean(required=True)


class Dm3AddConversation(Strict):
    encryptedContactName = _text()
    encryptedProfileLocation = Text(load_default="", validate=validate.Length(max=MAX_DM3_TEXT))


class Dm3AddMessage(Dm3MessageRecord):
    encryptedContactName = _text()


class Dm3AddMessageBatch(Strict):
    encryptedContactName = _text()
    messageBatch = fields.List(fields.Nested(Dm3MessageRecord), required=True, validate=validate.Length(max=MAX_BATCH))


class Dm3EditMessageBatch(Strict):
    encryptedContactName = _text()
    editMessageBatchPayload = fields.List(
        fields.Nested(Dm3MessageRecord), required=True, validate=validate.Length(max=MAX_BATCH)
    )


class Dm3ToggleHide(Strict):
    encryptedContactName = _text()
    hide = _StrictBoolean(required=True)


class Dm3ClearHalted(Strict):
    messageId = _text()
    aliasName = Text(load_default=None, allow_none=True, max_length=MAX_DM3_TEXT)


class Dm3Page(Strict):
    """``?pageSize=&offset=`` of dm3's paged reads; ``offset`` is a page index, as dm3's clients send it."""

    def __init__(self, default_size: int) -> None:
        super().__init__()
        self.fields["pageSize"].load_default = default_size

    pageSize = fields.Integer(load_default=10, validate=validate.Range(min=1, max=MAX_PAGE))  # noqa: N815
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_SAFE_INTEGER))


class HistoryPage(Strict):
    """``?offset=&limit=`` of a document's history (oldest first)."""

    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_SAFE_INTEGER))
    limit = fields.Integer(load_default=MAX_HISTORY_PAGE, validate=validate.Range(min=1, max=MAX_HISTORY_PAGE))


class ChallengeAnswer(Strict):
    """``POST /auth/{ensName}``: exactly ``{challenge, signature}``, strings."""

    challenge = Text(required=True, max_length=4096)
    signature = Text(required=True, max_length=MAX_SIGNATURE)
