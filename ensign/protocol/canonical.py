"""Canonical JSON: the exact bytes dm3 signs and hashes.

dm3 runs every signature and hash input through ``stringify`` from its lib-shared package, a thin
wrapper around ``safe-stable-stringify`` 2.4.3. Its output is ``JSON.stringify`` with object keys
sorted recursively: compact, no whitespace, non-ASCII characters written raw (UTF-8 once encoded).

``orjson.dumps(value, option=OPT_SORT_KEYS)`` writes the same bytes for strings, integers, booleans,
null, lists and dicts (compact, non-ASCII raw, the same escapes as ``JSON.stringify`` and as
Python's ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, about ten
times faster than the latter on a 6 KB envelope), except in three places where we either refuse
the input or correct the order:

* floats — JavaScript prints ``1.0`` as ``1`` and ``1e21`` as ``1e+21``; dm3 payloads hold only
  integers (millisecond timestamps), so any float is refused rather than guessed at;
* lone surrogates — JavaScript escapes them, Python cannot encode them; refused;
* key order — JavaScript sorts keys by UTF-16 code unit, Python by code point. They disagree only
  when a key holds a character outside the Basic Multilingual Plane; we then sort by UTF-16.

Integers beyond ±(2**53 - 1) are refused too: a JavaScript peer would parse them into doubles and
print different digits. A ``None`` value is written as ``null`` (JSON's null), never dropped: an
*absent* optional field must be left out of the dict by the caller, as dm3 leaves out ``undefined``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ensign.errors import CanonicalJSONError

# Parsing lives beside this module (depth, number and surrogate limits); re-exported for callers.
from .safe_json import parse_json

__all__ = ["stringify", "stringify_bytes", "canonical_size", "parse_json", "MAX_SAFE_INTEGER"]

#: Largest integer a JavaScript number holds exactly (``Number.MAX_SAFE_INTEGER``).
MAX_SAFE_INTEGER = 2**53 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")


def stringify(value: object) -> str:
    """Return dm3's canonical JSON for ``value`` (safe-stable-stringify 2.4.3, byte for byte).

    Accepts ``dict`` (string keys), ``list``/``tuple``, ``str``, ``int``, ``bool`` and ``None``.
    Raises :class:`CanonicalJSONError` for floats, NaN, integers outside JavaScript's safe range,
    strings holding lone surrogates, non-string keys, other types, and circular structures.
    """
    return stringify_bytes(value).decode("utf-8")


def stringify_bytes(value: object) -> bytes:
    """:func:`stringify` as UTF-8 bytes, what is hashed, measured and stored (no decode, no encode)."""
    if type(value) is str:
        # The hot path: dm3 hashes stringify(envelope.message), a bare string.
        if not value.isascii() and _SURROGATE.search(value):
            raise CanonicalJSONError(_SURROGATE_MESSAGE.format(where="a string"))
        return orjson.dumps(value)
    try:
        non_bmp_key = _check(value)
    except _Refusal as refusal:
        raise refusal.error() from None
    if non_bmp_key:
        # Keys already in JavaScript's order; orjson keeps a dict's own order without the option.
        return orjson.dumps(_utf16_ordered(value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_size(value: object) -> int:
    """UTF-8 byte length of :func:`stringify` — dm3's ``getSize``."""
    return len(stringify_bytes(value))


_SURROGATE_MESSAGE = (
    "{where} contains a lone UTF-16 surrogate (U+D800..U+DFFF); it has no UTF-8 form and "
    "cannot be part of canonical JSON"
)


class _Refusal(Exception):
    """Raised deep inside :func:`_check`; frames add their key on the way out to build the path."""

    def __init__(self, template: str) -> None:
        super().__init__(template)
        self.template = template
        self.segments: list[str] = []

    def error(self) -> CanonicalJSONError:
        path = "$" + "".join(reversed(self.segments))
        return CanonicalJSONError(self.template.format(path=path))


# Deeper than any dm3 payload by far; stops cycles and stack exhaustion with a clear message.
_MAX_DEPTH = 256


def _check(value: Any, depth: int = 0) -> bool:
    """Validate ``value`` for canonical JSON; return True if some key needs UTF-16 ordering.

    The path to a refused value is only built when something is refused, keeping the common case
    to one type test per node.
    """
    kind = type(value)
    if kind is str:
        if not value.isascii() and _SURROGATE.search(value):
            raise _Refusal(_SURROGATE_MESSAGE.format(where="the string at {path}"))
        return False
    if kind is bool or value is None:
        return False
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise _Refusal("the integer at {path} is outside JavaScript's safe range (±2**53-1)")
        return False
    if depth >= _MAX_DEPTH:
        raise _Refusal(f"the value at {{path}} is nested more than {_MAX_DEPTH} levels deep (or is circular)")
    if isinstance(value, dict):
        needs_utf16 = False
        for key, item in value.items():
            if type(key) is not str:
                raise _Refusal(f"object keys must be strings; {{path}} has a {type(key).__name__} key")
            try:
                if not key.isascii():
                    if _SURROGATE.search(key):
                        raise _Refusal(_SURROGATE_MESSAGE.format(where="a key at {path}"))
                    if max(key) > "\uffff":
                        needs_utf16 = True
                if _check(item, depth + 1):
                    needs_utf16 = True
            except _Refusal as refusal:
                # Non-ASCII keys are shown JSON-escaped so the message itself is always encodable.
                refusal.segments.append(
                    "." + key if key.isascii() and key.isprintable() else f"[{json.dumps(key)}]"
                )
                raise
        return needs_utf16
    if isinstance(value, (list, tuple)):
        needs_utf16 = False
        for index, item in enumerate(value):
            try:
                if _check(item, depth + 1):
                    needs_utf16 = True
            except _Refusal as refusal:
                refusal.segments.append(f"[{index}]")
                raise
        return needs_utf16
    if isinstance(value, float):
        raise _Refusal(
            f"the number at {{path}} is a float ({value!r}); canonical JSON carries integers only "
            "because JavaScript and Python print floats differently"
        )
    if isinstance(value, int):  # int subclasses other than bool (e.g. IntEnum): refuse, be explicit
        raise _Refusal(f"the value at {{path}} is a {kind.__name__}, not a plain int")
    raise _Refusal(f"the value at {{path}} has type {kind.__name__}, which is not JSON")


def _utf16_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like JavaScript's code-unit string comparison.
    return key.encode("utf-16-be")


def _utf16_ordered(value: Any) -> Any:
    """Rebuild dicts with keys in JavaScript (UTF-16 code unit) order; values already validated."""
    if isinstance(value, dict):
        return {k: _utf16_ordered(value[k]) for k in sorted(value, key=_utf16_key)}
    if isinstance(value, (list, tuple)):
        return [_utf16_ordered(item) for item in value]
    return value
