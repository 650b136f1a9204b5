"""Checks on the top-level fields of request bodies, with messages that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ensign.errors import SchemaError

__all__ = ["check_fields", "string_field", "object_field", "optional_int_field"]

_TYPE_NAMES = {str: "a string", dict: "an object", int: "an integer"}


def check_fields(body: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Every ``required`` field is present and nothing outside ``required + optional`` is."""
    missing = [name for name in required if name not in body]
    if missing:
        raise SchemaError(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise SchemaError(f"unknown field(s): {', '.join(unknown)}")


def string_field(body: Mapping[str, Any], name: str, *, max_length: int = 1024) -> str:
    """A non-empty string field of at most ``max_length`` characters."""
    value = body[name]
    if not isinstance(value, str):
        raise SchemaError(f"{name} must be a string, got {_json_type(value)}")
    if not value:
        raise SchemaError(f"{name} must not be empty")
    if len(value) > max_length:
        raise SchemaError(f"{name} is longer than {max_length} characters")
    return value


def object_field(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A JSON object field."""
    value = body[name]
    if not isinstance(value, dict):
        raise SchemaError(f"{name} must be an object, got {_json_type(value)}")
    return value


def optional_int_field(body: Mapping[str, Any], name: str) -> int | None:
    """An integer field that may be absent; booleans and floats are refused."""
    if name not in body:
        return None
    value = body[name]
    if type(value) is not int:
        raise SchemaError(f"{name} must be an integer, got {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
