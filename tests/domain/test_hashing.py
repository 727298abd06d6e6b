"""MIP-004 hashes against Sokosumi's (vectors made by its algorithm in Node) and the SDK's."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from masumi.helper_functions import create_masumi_input_hash, create_masumi_output_hash

from agentjobs.server.domain.hashing import (
    UnhashableValueError,
    canonical_input,
    input_hash,
    output_hash,
)
from tests.domain.hash_vectors import VECTORS, cases, named, parsed

ID = "0123456789abcdef"


def over_grpc(value: dict[str, Any]) -> dict[str, Any]:
    """The same input sent as a protobuf Struct: every number arrives as a double."""
    sent = struct_pb2.Struct()
    sent.update(value)
    received = struct_pb2.Struct.FromString(sent.SerializeToString())
    return json_format.MessageToDict(received)


def test_the_vectors_come_from_the_canonicalizer_sokosumi_pins() -> None:
    assert VECTORS["canonicalizer"] == "json-canonicalize@2.0.0"
    assert len(VECTORS["inputs"]) > 300 and len(VECTORS["outputs"]) > 100


@pytest.mark.parametrize("vector", cases("inputs"))
def test_input_hash_is_sokosumis(vector: dict[str, Any]) -> None:
    assert canonical_input(parsed(vector)) == vector["canonical"]
    assert input_hash(parsed(vector), vector["identifier"]) == vector["input_hash"]


@pytest.mark.parametrize("vector", cases("inputs"))
def test_the_same_input_over_grpc_hashes_the_same(vector: dict[str, Any]) -> None:
    assert input_hash(over_grpc(parsed(vector)), vector["identifier"]) == vector["input_hash"]


@pytest.mark.parametrize("vector", cases("divergent"))
def test_inputs_sokosumi_would_hash_differently_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(UnhashableValueError) as refused:
        input_hash(parsed(vector), vector["identifier"])
    assert isinstance(refused.value, ValueError)
    assert refused.value.path  # names the field, so the door can say which one


@pytest.mark.parametrize("vector", cases("outputs"))
def test_output_hash_is_sokosumis_and_the_sdks(vector: dict[str, Any]) -> None:
    expected = vector["output_hash"]
    assert output_hash(vector["result"], vector["identifier"]) == expected
    assert create_masumi_output_hash(vector["result"], vector["identifier"]) == expected


def test_http_int_and_grpc_double_hash_alike() -> None:
    http = json.loads('{"f": 1, "g": [2, 3.5], "h": {"i": 10, "j": 1.0}}')
    grpc = over_grpc(http)
    assert grpc["f"] == 1.0 and isinstance(grpc["f"], float)
    assert input_hash(http, ID) == input_hash(grpc, ID)
    # The SDK's canonicaljson writes 1 and 1.0 differently: one of the two could not be paid.
    assert create_masumi_input_hash(http, ID) != create_masumi_input_hash(grpc, ID)


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"prompt": "write a haiku", "count": 3, "flags": [True, False, None]},
        {"b": {"d": [1, -2, {"z": "x", "a": "y"}]}, "a": "é 你好 \u2028 \x7f"},
        {"quote": '"', "backslash": "\\", "controls": "\x00\x1f\n\t"},
        {"n": 9007199254740992, "m": -9007199254740991},
    ],
)
def test_agrees_with_the_sdk_without_floats_or_astral_keys(value: dict[str, Any]) -> None:
    assert input_hash(value, ID) == create_masumi_input_hash(value, ID)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("float 1.0 is 1", {"f": 1.0}),
        ("1e-7 keeps its exponent", {"f": 1e-7}),
        ("1E20 is written out", {"f": 1e20}),
        ("astral keys sort before U+FFFF", {"\U0001f600": 1, "\uffff": 2, "é": 3, "a": 4}),
    ],
)
def test_fixes_where_the_sdk_differs_from_sokosumi(name: str, value: dict[str, Any]) -> None:
    sokosumi = named(name)
    assert sokosumi["identifier"] == ID
    assert input_hash(value, ID) == sokosumi["input_hash"]
    assert create_masumi_input_hash(value, ID) != sokosumi["input_hash"]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"f": math.nan}, "f"),
        ({"f": [1, math.inf]}, "f[1]"),
        ({"f": {"g": -math.inf}}, "f.g"),
        ({"big": 2**53 + 1}, "big"),
        ({"big": -(2**53) - 1}, "big"),
        ({"huge": 10**400}, "huge"),
        ({"huge": [10**5000]}, "huge[0]"),
        ({"s": ["ok", "\ud83d"]}, "s[1]"),
        ({"\udfff": 1}, "\\udfff"),
        ({"a": {1: "x"}}, "a"),
        ({"b": b"bytes"}, "b"),
        ({"c": {1, 2}}, "c"),
        ({"toJSON": 0}, "toJSON"),
    ],
)
def test_refuses_what_a_javascript_buyer_cannot_hash_alike(value: Any, path: str) -> None:
    with pytest.raises(UnhashableValueError) as refused:
        input_hash(value, ID)
    assert refused.value.path == path
    assert path in str(refused.value) and refused.value.reason in str(refused.value)


def test_refuses_input_nested_deeper_than_it_can_walk() -> None:
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(UnhashableValueError, match="nested too deeply"):
        input_hash({"deep": deep}, ID)


def test_accepts_the_integers_a_double_carries_exactly() -> None:
    # JSON.stringify writes the doubles 1e20 and 2**60 as these digits.
    for text in ("100000000000000000000", "1152921504606847000", "-9007199254740992"):
        assert canonical_input({"n": int(text)}) == f'{{"n":{text}}}'
    # 2**60 is a double too, but its exact digits are not what a JavaScript buyer prints.
    with pytest.raises(UnhashableValueError, match="not exact"):
        canonical_input({"n": 2**60})


def test_output_hash_refuses_a_result_that_is_not_unicode() -> None:
    with pytest.raises(UnhashableValueError, match="lone surrogate"):
        output_hash("half a pair \ud83d", ID)
