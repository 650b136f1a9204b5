"""Parsing untrusted JSON text without letting it crash or poison the process.

Every JSON an outsider can send (HTTP bodies, JSON-RPC, socket.io frames, answers of other
services, linked profiles) is parsed by :func:`parse_json`. On top of strict JSON (UTF-8 only, no
``NaN``/``Infinity``) it refuses, with an :class:`~ensign.errors.EncodingError` naming the problem:

* nesting deeper than :data:`MAX_DEPTH` — found by a cheap scan *before* the parser runs. The C
  parser recurses once per level, and py_ecc (imported by eth-account and web3) raises the
  interpreter's recursion limit to 100,000, so a few hundred KB of ``[[[[`` overflowed the C
  stack and killed the process (SIGSEGV) instead of raising ``RecursionError``;
* integers longer than Python converts (4,300 digits, ``sys.get_int_max_str_digits``), which the
  parser reports as a bare ``ValueError``, and numbers too large for a float (``1e999``, which
  would become ``inf`` and be written back as the non-JSON ``Infinity``);
* strings holding a lone UTF-16 surrogate (``"\\ud800"``): they have no UTF-8 form, so the first
  write to Redis, a log line or a hash of them would fail later, far from the input.

Two parsers, one result. orjson parses first (a 6 KB envelope in a sixth of the standard
parser's time; a submission parses two). It refuses everything above but the depth (its own limit
is 1,024 levels, without recursion trouble) and turns integers past 64 bits into floats; so a
value it returns is checked for depth and for floats in one walk, and any refusal, depth or float
sends the text to the standard parser with the checks above, which gives the value or names the
problem. Floats are rare in this protocol's messages; a value with one is parsed by the standard
parser, so every value returned is the one the standard parser gives.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

import orjson

from ensign.errors import EncodingError

__all__ = ["MAX_DEPTH", "parse_json"]

#: Deepest nesting of arrays and objects accepted. dm3's deepest payload (an envelope's
#: metadata inside a JSON-RPC request) is 5 levels; this leaves room and stays far from any stack.
MAX_DEPTH = 64

# A JSON string literal, unrolled so the regex engine never backtracks.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PAIR = re.compile(r"\[\]|\{\}")
_PAIR_PASSES = 3
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# Escapes of UTF-16 surrogates; only when one occurs can the parsed value hold a lone surrogate
# (strict UTF-8 decoding already refuses raw surrogates).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(text: str | bytes, *, what: str = "JSON", max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON text; raise :class:`EncodingError` naming ``what`` when it is refused.

    Floats are parsed (as JavaScript would); schemas refuse them where an integer is required.
    """
    if isinstance(text, (str, bytes, bytearray)):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the standard parser below names the problem
        else:
            if not _deep_or_float(value, max_depth):
                return value
    return _parse_strictly(text, what, max_depth)


def _parse_strictly(text: object, what: str, max_depth: int) -> Any:
    """:func:`parse_json` with the standard parser and the checks of the module docstring."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError(f"{what} is not valid UTF-8") from None
    if not isinstance(text, str):
        raise EncodingError(f"{what} must be a JSON string, got {type(text).__name__}")
    if _too_deep(text, max_depth):
        raise EncodingError(f"{what} is nested more than {max_depth} levels deep")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise EncodingError(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError:
        # int() past sys.get_int_max_str_digits() (4,300 digits by default).
        raise EncodingError(f"{what} holds a number with too many digits") from None
    except RecursionError:  # cannot happen after the depth scan; kept as a last guard
        raise EncodingError(f"{what} is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(value):
        raise EncodingError(f"{what} holds a lone UTF-16 surrogate (U+D800..U+DFFF), which has no UTF-8 form")
    return value


def _deep_or_float(value: Any, limit: int) -> bool:
    """True if ``value`` nests arrays/objects deeper than ``limit`` or holds a float."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children if not isinstance(child, (str, int)))
        elif isinstance(item, float):
            return True
    return False


def _too_deep(text: str, limit: int) -> bool:
    """True if arrays/objects in ``text`` nest deeper than ``limit`` (brackets in strings ignored).

    Linear and mostly at C speed, so the scan costs less than the parse it protects: strings and
    everything but brackets are dropped, a few regex passes remove innermost ``[]``/``{}`` pairs
    (which collapses flat and shallow documents), and the running depth of what is left is
    summed up. Unbalanced brackets (invalid JSON) are left for the parser to report.
    """
    # Fast path: nesting can never exceed the number of opening brackets.
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    removed = 0
    for _ in range(_PAIR_PASSES):
        inner_removed = _PAIR.sub("", brackets)
        if len(inner_removed) == len(brackets):
            break
        brackets = inner_removed
        removed += 1
    if len(brackets) <= limit - removed:
        return False
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit - removed


def _holds_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            # Python's json joins a valid \ud83d\ude00 pair into one character: any surrogate left is lone.
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _refuse_constant(name: str) -> Any:
    raise EncodingError(f"JSON constant {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise EncodingError(f"the number {text[:20]}… is too large for a float")
    return value


# What json.loads(text, parse_constant=…, parse_float=…) builds on every call, built once.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
