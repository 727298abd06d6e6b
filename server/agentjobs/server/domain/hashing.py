"""MIP-004 input and output hashes, computed exactly as the buyer computes them.

A buyer pays only for a job whose hashes it can reproduce, and the buyer that matters is
Sokosumi, the marketplace, written in TypeScript. Its `hashInput` and `hashResult`
(masumi-network/sokosumi, packages/masumi/src/hash/hash.ts) compute

    input  = sha256_hex(identifier + ";" + canonicalizeEx(JSON.parse(input_text)))
    output = sha256_hex(identifier + ";" + JSON.stringify(result).slice(1, -1))

with `canonicalizeEx` from the npm package json-canonicalize 2.0.0: RFC 8785 (JCS) key
order and ECMAScript number formatting. So the input is canonicalized here with a real
JCS implementation (`rfc8785`), after looking at it as JavaScript would: every number
is an IEEE double, so `1` and `1.0` (HTTP/JSON vs gRPC's Struct) hash alike.

Some values have no hash a JavaScript buyer and this service agree on. They raise
`UnhashableValueError` (a ValueError) instead of yielding a job nobody can pay:
- an integer whose decimal text a double cannot carry exactly (9007199254740993 reaches
  the buyer as ...992): the buyer would hash, and believe it sent, another number than
  the agent receives. Every |n| <= 2**53 is fine, and so is an integer JSON.stringify
  itself writes for a large double (1e20 arrives as 100000000000000000000);
- NaN and infinities (not JSON; JSON.parse turns 1e400 into Infinity, hashed as null);
- strings or keys holding lone surrogates (not Unicode; JCS requires valid Unicode);
- an object with a non-null "toJSON" member: json-canonicalize hands such an object to
  JSON.stringify unsorted, so Sokosumi's hash is not JCS and depends on key order, which
  gRPC's Struct does not even keep;
- anything that is not JSON (non-string keys, bytes, sets, ...) or is nested too deeply.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import rfc8785

# The largest magnitude below which every integer is a double; past it, see _js_integer.
MAX_EXACT_INTEGER = 2**53

_SURROGATE = re.compile("[\ud800-\udfff]")


class UnhashableValueError(ValueError):
    """A value no JavaScript buyer could hash as we do; `path` locates it ("" = the whole
    input, else like `a[2].b`) so the caller can name the offending field."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or 'input'}: {reason}")
        self.path = path
        self.reason = reason


def canonical_input(input_data: Mapping[str, Any]) -> str:
    """The RFC 8785 text of `input_data` as a JavaScript buyer canonicalizes it."""
    try:
        return rfc8785.dumps(_as_javascript_sees_it(input_data)).decode("utf-8")
    except _Refused as refused:
        raise UnhashableValueError(_path(refused.trail), refused.reason) from None
    except RecursionError:
        raise UnhashableValueError("", "nested too deeply") from None


def input_hash(input_data: Mapping[str, Any], identifier_from_purchaser: str) -> str:
    """sha256 hex of `identifier;JCS(input_data)`; `{}` for a job without input."""
    return _sha256_hex(f"{identifier_from_purchaser};{canonical_input(input_data)}")


def output_hash(result: str, identifier_from_purchaser: str) -> str:
    """sha256 hex of `identifier;` + the result as a JSON string without its quotes.

    For valid Unicode, json.dumps(ensure_ascii=False) escapes exactly what JavaScript's
    JSON.stringify escapes (quote, backslash, U+0000-U+001F, short forms for \\b \\f \\n
    \\r \\t, lowercase \\u00XX for the rest); this is also the masumi SDK's
    create_masumi_output_hash, without its logging of the whole result.
    """
    if _SURROGATE.search(result):
        # Neither gRPC (UTF-8 only) nor the JSON front can deliver such a result.
        raise UnhashableValueError("result", "holds a lone surrogate, not valid Unicode")
    escaped = json.dumps(result, ensure_ascii=False)[1:-1]
    return _sha256_hex(f"{identifier_from_purchaser};{escaped}")


def _sha256_hex(preimage: str) -> str:
    return hashlib.sha256(preimage.encode("utf-8")).hexdigest()


class _Refused(Exception):
    # The path is collected on the way out of a refusal, so a walk that succeeds (nearly
    # always, over inputs of up to a megabyte) formats none.
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.trail: list[str | int] = []


def _path(trail: list[str | int]) -> str:
    path = ""
    for step in reversed(trail):
        if isinstance(step, int):
            path += f"[{step}]"
        else:
            # The path goes into error details that must be UTF-8: spell surrogates out.
            shown = step.encode("utf-8", "backslashreplace").decode("utf-8")
            path += f".{shown}" if path else shown
    return path


def _as_javascript_sees_it(value: Any) -> Any:
    """The value JSON.parse would give a JavaScript buyer, with numbers as floats."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _js_integer(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused(f"{value} is not a JSON number")
        return value
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise _Refused("string holds a lone surrogate, not valid Unicode")
        return value
    if isinstance(value, Mapping):
        return _js_object(value)
    if isinstance(value, list | tuple):
        return _js_array(value)
    raise _Refused(f"{type(value).__name__} is not a JSON value")


def _js_integer(value: int) -> float:
    # JSON.parse rounds the text to the nearest double; the hash is only shared when the
    # buyer would print that double back as the same digits the agent receives.
    if abs(value) <= MAX_EXACT_INTEGER:
        return float(value)
    try:
        as_double = float(value)
    except OverflowError:
        as_double = math.inf
    if math.isfinite(as_double) and rfc8785.dumps(as_double).decode() == str(value):
        return as_double
    # Huge integers are named by size: str() of one past 4300 digits raises, and error
    # details should stay short.
    shown = str(value) if abs(value) < 10**30 else f"of {value.bit_length()} bits"
    raise _Refused(f"integer {shown} is not exact as a JavaScript number (a double)")


def _js_object(value: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _Refused(f"key {key!r} is not a string")
        try:
            if _SURROGATE.search(key):
                raise _Refused("key holds a lone surrogate, not valid Unicode")
            if key == "toJSON" and item is not None:
                raise _Refused(
                    "a non-null 'toJSON' member makes the buyer's canonical form unsorted"
                )
            out[key] = _as_javascript_sees_it(item)
        except _Refused as refused:
            refused.trail.append(key)
            raise
    return out


def _js_array(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for index, item in enumerate(value):
        try:
            out.append(_as_javascript_sees_it(item))
        except _Refused as refused:
            refused.trail.append(index)
            raise
    return out
