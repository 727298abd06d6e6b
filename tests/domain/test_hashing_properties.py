"""Properties of the input hash over the whole accepted domain.

Number formatting is where JCS implementations differ, and a Python re-implementation of
JavaScript's would read the same shortest digits from repr() as rfc8785 does: agreeing
with it would prove nothing. That assurance comes from the vectors, which V8 formatted
(test_hashing.py, 2,000 doubles drawn over all bit patterns). What can be checked here
without an oracle is checked here: transport does not change the hash, and for inputs
without floats an independent model of json-canonicalize (a few lines: JSON.stringify's
string escaping and a sort on UTF-16 code units) gives the same text.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format, struct_pb2
from hypothesis import given
from hypothesis import strategies as st

from agentjobs.server.domain.hashing import MAX_EXACT_INTEGER, canonical_input, input_hash

ID = "a1b2c3d4e5f60718"

unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
# A "toJSON" member is outside the domain: json-canonicalize would not sort its object.
member_keys = unicode_text.filter(lambda key: key != "toJSON")
integers = st.integers(-MAX_EXACT_INTEGER, MAX_EXACT_INTEGER)
floats = st.floats(allow_nan=False, allow_infinity=False)


def json_objects(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(member_keys, inner, max_size=4),
        max_leaves=12,
    )
    return st.dictionaries(member_keys, values, max_size=5)


accepted = json_objects(st.none() | st.booleans() | integers | floats | unicode_text)
without_floats = json_objects(st.none() | st.booleans() | integers | unicode_text)


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def over_grpc(value: dict[str, Any]) -> dict[str, Any]:
    sent = struct_pb2.Struct()
    sent.update(value)
    return json_format.MessageToDict(struct_pb2.Struct.FromString(sent.SerializeToString()))


def model_canonical(value: Any) -> str:
    """json-canonicalize for float-free JSON: JSON.stringify for scalars, sorted keys."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        members = (f"{model_canonical(k)}:{model_canonical(value[k])}" for k in keys)
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(model_canonical(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@given(accepted)
def test_grpc_and_http_hash_alike(value: dict[str, Any]) -> None:
    assert input_hash(over_grpc(value), ID) == input_hash(value, ID)


@given(accepted)
def test_json_transport_and_key_order_do_not_matter(value: dict[str, Any]) -> None:
    expected = input_hash(value, ID)
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert input_hash(json.loads(text), ID) == expected
    assert input_hash(reversed_keys(value), ID) == expected


@given(accepted)
def test_canonical_text_reads_back_as_the_same_value(value: dict[str, Any]) -> None:
    # Read as a JavaScript buyer reads it: every number a double (and -0.0 == 0).
    assert json.loads(canonical_input(value), parse_int=float) == value


@given(without_floats)
def test_matches_a_model_of_the_buyers_canonicalizer(value: dict[str, Any]) -> None:
    assert canonical_input(value) == model_canonical(value)
