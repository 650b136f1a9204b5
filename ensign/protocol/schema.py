"""Validation of JSON objects in one style, for the wire types and every request body: a
marshmallow schema that refuses unknown fields, loaded by :func:`load`, which raises
:class:`~ensign.errors.SchemaError` (400 ``invalid_schema``) naming every offending field by its
path (``metadata.timestamp: must be a string``) and listing them in ``details.fields``.

The wire types (:mod:`ensign.protocol.models`) and the services' request bodies
(``delivery/schemas.py``, ``backend/schemas.py``) are all declared with these pieces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ensign.errors import EncodingError, InvalidRequest, SchemaError
from ensign.protocol.canonical import MAX_SAFE_INTEGER
from ensign.protocol.encoding import b64decode

__all__ = ["SURROGATE", "Base64", "Pattern", "SafeInt", "Strict", "Text", "load"]

#: A lone UTF-16 surrogate, which canonical JSON cannot encode.
SURROGATE = re.compile("[\ud800-\udfff]")


class Strict(Schema):
    """Unknown fields are refused (dm3's schemas are generated with additionalProperties false)."""

    class Meta:
        unknown = "raise"


class Text(fields.String):
    """A JSON string that can be put into canonical JSON (no lone surrogates).

    :param max_length: when given, the string must have 1 to ``max_length`` characters.
    """

    def __init__(self, *, max_length: int | None = None, **kwargs: Any) -> None:
        if max_length is not None:
            kwargs["validate"] = validate.Length(min=1, max=max_length)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        if not value.isascii() and SURROGATE.search(value):
            raise ValidationError("contains a lone UTF-16 surrogate")
        return value


class Base64(Text):
    """Base64 of exactly ``length`` bytes (keys, signatures)."""

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.length = length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            b64decode(text, length=self.length)
        except EncodingError:
            raise ValidationError(f"must be base64 of exactly {self.length} bytes") from None
        return text


class Pattern(Text):
    """A string matching ``pattern`` in full; the error says it must be ``description``."""

    def __init__(self, pattern: re.Pattern[str], description: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern = pattern
        self.description = description

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self.pattern.fullmatch(text):
            raise ValidationError(f"must be {self.description}")
        return text


class SafeInt(fields.Integer):
    """A JSON integer (not a bool, not a float) within JavaScript's safe range, non-negative."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(min=0, max=MAX_SAFE_INTEGER), **kwargs)


def load(schema: Schema, obj: Any, what: str = "request body", *, error: type[InvalidRequest] = SchemaError) -> Any:
    """``schema.load(obj)``; otherwise ``error`` (:class:`SchemaError` by default) naming ``what``
    and every failing field."""
    if not isinstance(obj, Mapping):
        raise error(f"{what} must be a JSON object, got {type(obj).__name__}")
    try:
        return schema.load(obj)
    except ValidationError as exc:
        problems: list[str] = []
        _flatten(exc.messages, "", problems)
        fields_named = sorted({p.split(":", 1)[0] for p in problems if ":" in p})
        raise error(f"invalid {what}: " + "; ".join(problems), details={"fields": fields_named}) from None


def _flatten(messages: Any, path: str, out: list[str]) -> None:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                _flatten(value, path, out)
            elif isinstance(key, int):
                _flatten(value, f"{path}[{key}]", out)
            else:
                _flatten(value, f"{path}.{key}" if path else str(key), out)
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            if isinstance(item, (Mapping, list, tuple)):
                _flatten(item, path, out)
            else:
                text = str(item).rstrip(".")
                # marshmallow's stock messages are capitalised sentences; lower-case their start so
                # they read as a continuation of "<field>: ".
                if text[:1].isupper() and text[1:2].islower():
                    text = text[0].lower() + text[1:]
                out.append(f"{path}: {text}" if path else text)
