"""Property tests: every parser of the protocol core and of the gateway's ABI/DNS decoding, fed
arbitrary input, either answers or refuses with an Ensign error (a 4xx) — never anything else.

A parser that raised ``ValueError``, ``UnicodeEncodeError`` or ``RecursionError`` instead turned
into a 500 (or, for recursion, a crashed process) at the service in front of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensign.ens import ccip
from ensign.errors import EncodingError, EnsignError
from ensign.protocol import encoding
from ensign.protocol.canonical import MAX_SAFE_INTEGER, stringify
from ensign.protocol.models import (
    DeliveryInformation,
    DeliveryServiceProfile,
    EncryptionEnvelop,
    Message,
    Postmark,
    SignedUserProfile,
    UserProfile,
)
from ensign.protocol.multi import MultiCopy, MultiDeliveryInformation, MultiEnvelope
from ensign.protocol.profile import load_delivery_service_profile, load_user_profile, parse_profile_record
from ensign.protocol import safe_json
from ensign.protocol.safe_json import MAX_DEPTH, parse_json

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON values as a parser meets them: every scalar, lone surrogates and huge numbers included.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=4)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
# Safe values: what canonical JSON and the parser must round-trip exactly.
safe_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]))
safe_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | safe_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(safe_text, children, max_size=5),
    max_leaves=30,
)


def answers_or_refuses(parse: Callable[..., Any], *args: Any) -> None:
    """Call ``parse``; an :class:`EnsignError` is a refusal (4xx), any other exception fails the test."""
    try:
        parse(*args)
    except EnsignError as exc:
        assert exc.status < 500, f"{type(exc).__name__} with status {exc.status}: {exc.message}"


# -- untrusted JSON text -------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_json_refuses_any_garbage_with_an_encoding_error(raw: bytes) -> None:
    answers_or_refuses(parse_json, raw)


@FUZZ
@given(safe_values)
def test_parse_json_reads_back_every_canonical_value(value: Any) -> None:
    assert parse_json(stringify(value)) == value
    assert parse_json(json.dumps(value).encode()) == value


def _typed(value: Any) -> Any:
    """``value`` with each scalar's type beside it: 1, 1.0 and True compare equal in Python."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


@FUZZ
@given(json_values)
def test_parse_json_gives_what_the_standard_parser_gives(value: Any) -> None:
    """The fast parser (orjson) is only a shortcut: integers past 64 bits stay integers, floats
    stay floats, and whatever the standard parser with the checks would refuse is refused."""
    unescaped = json.dumps(value, ensure_ascii=False)
    for text in (json.dumps(value), unescaped, unescaped.encode("utf-8", "surrogatepass")):
        try:
            expected = _typed(safe_json._parse_strictly(text, "JSON", MAX_DEPTH))
        except EncodingError as exc:
            with pytest.raises(EncodingError) as refused:
                parse_json(text)
            assert refused.value.message == exc.message
        else:
            assert _typed(parse_json(text)) == expected


@FUZZ
@given(st.integers(min_value=MAX_DEPTH + 1, max_value=5 * MAX_DEPTH), st.sampled_from(["[", '{"a":', '[{"b":']))
def test_parse_json_refuses_nesting_past_the_limit_before_parsing(depth: int, opener: str) -> None:
    with pytest.raises(EncodingError, match="nested more than"):
        parse_json(opener * depth)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@FUZZ
@given(safe_values, st.integers(min_value=0, max_value=6))
def test_the_depth_scan_refuses_exactly_what_nests_deeper_than_the_limit(value: Any, limit: int) -> None:
    text = json.dumps(value)
    if _depth(value) > limit:
        with pytest.raises(EncodingError, match="nested more than"):
            parse_json(text, max_depth=limit)
    else:
        assert parse_json(text, max_depth=limit) == value


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[" * 1000 + "\\\"{" * 500})
    assert parse_json(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("9" * 5000, "too many digits"),
        ('{"id": ' + "1" * 4301 + "}", "too many digits"),
        ("1e999", "too large for a float"),
        ('"\\ud800"', "lone UTF-16 surrogate"),
        ('{"\\udfff": 1}', "lone UTF-16 surrogate"),
        ('["ok", ["\\ud83d"]]', "lone UTF-16 surrogate"),
        ("NaN", "constant NaN"),
        (b"\xff\xfe{}", "not valid UTF-8"),
    ],
)
def test_parse_json_names_each_refused_input(text: str | bytes, problem: str) -> None:
    with pytest.raises(EncodingError, match=problem):
        parse_json(text)


def test_a_valid_surrogate_pair_is_one_character() -> None:
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"


def test_deep_nesting_cannot_crash_a_process_whose_recursion_limit_py_ecc_raised() -> None:
    """The segfault of issue 10: eth-account imports py_ecc, which sets the recursion limit to
    100,000; the C parser then overflowed the C stack on 150,000 ``[`` instead of raising."""
    script = (
        "import sys, eth_account\n"
        "assert sys.getrecursionlimit() >= 100000\n"
        "from ensign.protocol.canonical import parse_json\n"
        "from ensign.errors import EnsignError\n"
        "try:\n"
        "    parse_json('[' * 150000)\n"
        "except EnsignError as exc:\n"
        "    print('refused:', exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-500:]}"
    assert "refused:" in run.stdout


# -- canonical JSON ------------------------------------------------------------------------------


@FUZZ
@given(json_values)
def test_stringify_writes_or_refuses_any_value(value: Any) -> None:
    answers_or_refuses(stringify, value)


# -- models, profiles, envelopes, postmarks ------------------------------------------------------

MODEL_PARSERS: list[Callable[[Any], Any]] = [
    UserProfile.from_json,
    SignedUserProfile.from_json,
    DeliveryServiceProfile.from_json,
    Message.from_json,
    DeliveryInformation.from_json,
    EncryptionEnvelop.from_json,
    Postmark.from_json,
    load_user_profile,
    load_delivery_service_profile,
    MultiEnvelope.from_json,
    MultiCopy.from_json,
    MultiDeliveryInformation.from_json,
]


def _model_shaped(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the model's own field names and wrong values at any depth."""
    return st.fixed_dictionaries({}, optional={key: json_values for key in keys})


MODEL_KEYS = [
    "profile", "signature", "publicEncryptionKey", "publicSigningKey", "deliveryServices", "url",
    "message", "metadata", "version", "to", "from", "timestamp", "type", "referenceMessageHash",
    "attachments", "encryptedMessageHash", "encryptionScheme", "deliveryInformation", "signedUserProfile",
    "messageHash", "incommingTimestamp", "postmark", "preferredEncryptionScheme", "keys", "key",
]  # fmt: skip


@FUZZ
@given(st.sampled_from(MODEL_PARSERS), json_values | _model_shaped(MODEL_KEYS))
def test_model_parsers_refuse_wrong_types_at_any_depth(parse: Callable[[Any], Any], value: Any) -> None:
    answers_or_refuses(parse, value)


@FUZZ
@given(
    st.text(max_size=200)
    | st.builds(lambda body: "data:application/json;base64," + body, st.text(max_size=100))
    | st.builds(lambda body: "data:application/json," + body, st.text(max_size=100))
    | st.builds(lambda body: "https://" + body, st.text(max_size=60))
    | st.builds(lambda body: "{" + body, st.text(max_size=100))
)
def test_profile_records_parse_or_refuse(text: str) -> None:
    answers_or_refuses(parse_profile_record, text)


# -- encoding helpers ----------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=120), st.one_of(st.none(), st.integers(0, 64)))
def test_encoding_decoders_refuse_garbage(text: str, length: int | None) -> None:
    answers_or_refuses(lambda t: encoding.b64decode(t, length=length), text)
    answers_or_refuses(lambda t: encoding.hex_to_bytes(t, length=length), text)
    answers_or_refuses(encoding.utf8, text)
    answers_or_refuses(encoding.checksum_address, text)
    answers_or_refuses(encoding.normalize_name, text)
    assert encoding.is_address(text) in (True, False)


# -- the gateway's ABI and DNS decoding ---------------------------------------------------------

SELECTORS = [ccip.RESOLVE_SELECTOR, ccip.RESOLVE_WITH_CONTEXT_SELECTOR, ccip.BATCH_QUERY_SELECTOR, b"\x00" * 4]


@FUZZ
@given(st.sampled_from(SELECTORS), st.binary(max_size=400))
def test_calldata_decoding_refuses_garbage(selector: bytes, tail: bytes) -> None:
    answers_or_refuses(ccip.decode_resolve_request, selector + tail)
    answers_or_refuses(ccip.decode_batch_query, selector + tail)
    answers_or_refuses(ccip.decode_offchain_lookup, selector + tail)
    answers_or_refuses(ccip.decode_response, tail)


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=70), min_size=0, max_size=6), st.binary(max_size=8))
def test_dns_decoding_refuses_garbage(labels: list[bytes], junk: bytes) -> None:
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    answers_or_refuses(ccip.dns_decode, wire)
    answers_or_refuses(ccip.dns_decode, wire + junk)
    answers_or_refuses(ccip.dns_decode, junk)


@FUZZ
@given(st.text(max_size=80))
def test_dns_names_round_trip_or_are_refused(name: str) -> None:
    try:
        wire = ccip.dns_encode(name)
    except EnsignError as exc:
        assert exc.status < 500
        return
    try:
        assert ccip.dns_decode(wire) == name
    except EnsignError as exc:  # a label holding a dot, or bytes that are not a name
        assert exc.status < 500


@FUZZ
@given(st.sampled_from(SELECTORS[:2]), st.text(max_size=60), st.binary(max_size=80))
def test_resolve_calls_with_hostile_names_are_refused_cleanly(selector: bytes, name: str, record_call: bytes) -> None:
    from eth_abi.abi import encode

    dns_name = b"".join(bytes([min(len(p), 255)]) + p[:255] for p in (label.encode("utf-8", "surrogatepass") for label in name.split("."))) + b"\x00"
    if selector == ccip.RESOLVE_SELECTOR:
        call = selector + encode(["bytes", "bytes"], [dns_name, record_call])
    else:
        call = selector + encode(["bytes", "bytes", "bytes"], [dns_name, record_call, b""])
    answers_or_refuses(ccip.decode_resolve_request, call)
