"""The request bodies of the profile backend, as marshmallow schemas (one validation style, see
:mod:`ensign.protocol.schema`): unknown fields are refused and every error names its field.

``POST /profile/address``     ``{signedUserProfile: object, address: string, subdomain: string}``
``POST /profile/name``        ``{signature, addressName, dm3Name: string, timestamp?: integer}``
``POST /profile/deleteName``  ``{signature, dm3Name: string, timestamp?: integer}``

The profile object itself is checked by :meth:`ensign.protocol.models.SignedUserProfile.from_json`.
"""

from __future__ import annotations

from marshmallow import fields

from ensign.protocol.schema import Strict, Text

__all__ = [
    "MAX_NAME",
    "MAX_SIGNATURE",
    "AliasClaim",
    "AliasRelease",
    "ProfileRegistration",
]

MAX_NAME = 255  # characters of a name in a body
MAX_SIGNATURE = 200  # base64 of 64 bytes is 88 characters


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

