"""Canonical JSON: the bytes safe-stable-stringify 2.4.3 writes, and what we refuse.

Expected strings below are what safe-stable-stringify 2.4.3 prints under node 20 for the same
input (checked when these tests were written).
"""

from __future__ import annotations

import enum
import math

import pytest

from ensign.errors import CanonicalJSONError, EncodingError
from ensign.protocol.canonical import MAX_SAFE_INTEGER, canonical_size, parse_json, stringify


def test_keys_are_sorted_recursively_and_output_is_compact():
    value = {"b": 1, "a": [True, False, None, "x"], "c": {"z": {}, "y": []}}
    assert stringify(value) == '{"a":[true,false,null,"x"],"b":1,"c":{"y":[],"z":{}}}'


def test_bool_is_written_as_json_boolean_not_integer():
    assert stringify({"t": True, "f": False, "one": 1, "zero": 0}) == '{"f":false,"one":1,"t":true,"zero":0}'


def test_non_ascii_is_written_raw_and_controls_escaped_like_javascript():
    value = {"\u00e9": "\u2028\u0000\u001f\u007f\"\\/"}
    assert stringify(value) == '{"\u00e9":"\u2028\\u0000\\u001f\u007f\\"\\\\/"}'


def test_top_level_string_is_a_quoted_literal():
    assert stringify('top "level" \n\t\b\f\r \u0085 é 😀') == '"top \\"level\\" \\n\\t\\b\\f\\r \u0085 é 😀"'


def test_keys_sort_by_utf16_code_unit_not_code_point():
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+E000 in UTF-16 but after it by
    # code point. Digit keys sort as strings ("10" < "9"), as JavaScript's sort() does.
    value = {"\U0001F600": 1, "\uffff": 2, "\ue000": 3, "a": 4, "10": 5, "9": 6, "": 7}
    assert stringify(value) == '{"":7,"10":5,"9":6,"a":4,"\U0001F600":1,"\ue000":3,"\uffff":2}'


def test_utf16_order_applies_to_nested_objects_too():
    value = [{"x": {"\uffff": 1, "\U00010000": 2}}]
    assert stringify(value) == '[{"x":{"\U00010000":2,"\uffff":1}}]'


def test_none_is_null_and_is_never_dropped():
    # Absent optional fields must be left out by the caller; None is JSON null.
    assert stringify({"a": None}) == '{"a":null}'
    assert stringify([None]) == "[null]"


def test_tuples_are_arrays():
    assert stringify({"a": (1, "b")}) == '{"a":[1,"b"]}'


def test_safe_integer_bounds():
    assert stringify([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == "[9007199254740991,-9007199254740991]"
    with pytest.raises(CanonicalJSONError, match="safe range"):
        stringify({"n": MAX_SAFE_INTEGER + 1})


@pytest.mark.parametrize("number", [1.0, 0.5, -0.0, 1e21, math.nan, math.inf])
def test_floats_are_refused_including_integral_ones(number):
    with pytest.raises(CanonicalJSONError, match="float"):
        stringify({"timestamp": number})


def test_refusal_names_the_path():
    with pytest.raises(CanonicalJSONError, match=r"\$\.metadata\.timestamp"):
        stringify({"metadata": {"timestamp": 1.0}})
    with pytest.raises(CanonicalJSONError, match=r"\$\.a\[1\]"):
        stringify({"a": [1, 2.5]})


@pytest.mark.parametrize(
    "value",
    ["\ud800", {"k": "x\udfffy"}, {"\udc00": 1}, ["ok", "\ud83d"]],
    ids=["top", "value", "key", "array"],
)
def test_lone_surrogates_are_refused(value):
    with pytest.raises(CanonicalJSONError, match="surrogate"):
        stringify(value)


class _Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize("value", [b"bytes", {1: "int key"}, {"s": {1, 2}}, object(), _Colour.RED])
def test_non_json_types_are_refused(value):
    with pytest.raises(CanonicalJSONError):
        stringify(value)


def test_circular_structure_is_refused():
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CanonicalJSONError, match="circular"):
        stringify(loop)


def test_canonical_size_counts_utf8_bytes():
    assert canonical_size({"k": "é😀"}) == len('{"k":"é😀"}'.encode())
    assert canonical_size("é") == 4  # quotes + two bytes


def test_parse_json_refuses_nan_and_bad_text():
    assert parse_json('{"a":[1,"b"]}') == {"a": [1, "b"]}
    with pytest.raises(EncodingError, match="NaN"):
        parse_json('{"a":NaN}')
    with pytest.raises(EncodingError, match="not valid JSON"):
        parse_json("{")
    with pytest.raises(EncodingError, match="UTF-8"):
        parse_json(b"\xff")


def test_round_trip_through_parse_is_stable():
    text = '{"a":{"b":[1,2,{"c":"é"}]},"d":"x"}'
    assert stringify(parse_json(text)) == text
