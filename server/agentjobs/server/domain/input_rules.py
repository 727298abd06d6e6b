"""The door rules: what any value a caller sends must satisfy before anything acts on it.

One pure module, applied by the services to what both transports hand them (gRPC
requests after the servicer's conversion, HTTP bodies after JSON parsing), so both
refuse the same values with the same field violations, before any payment is requested.

Everything these rules accept can be
- stored by every backend: no NUL (PostgreSQL text refuses it), no lone surrogate
  (not encodable as UTF-8, so no database, no protobuf string and no JSON encoder
  takes it);
- carried back in a protobuf Struct by every read path: finite numbers only (JSON and
  the input hash have no NaN or infinity), integers a double holds exactly (a Struct
  number is a double; a larger integer would come back as another number, or not at
  all), nesting well inside protobuf's recursion limit of 100 messages (each JSON
  object level costs three: Struct, map entry, Value; 32 levels plus the enclosing
  ListJobsResponse and Job stay under it for every protobuf runtime).

The checks never recurse (an explicit stack), so a value nested a thousand levels deep
is refused, not a RecursionError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agentjobs.server.domain.errors import FieldViolation, InvalidArgumentError

MAX_DEPTH = 32
MAX_KEY_CHARS = 256
MAX_SAFE_INTEGER = 2**53
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 1000
# Enough to show a caller every problem of a realistic request, without building an
# answer as large as a hostile one.
MAX_VIOLATIONS = 20

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def shown(text: str, limit: int = 64) -> str:
    """`text` as it may appear in a message: encodable, short, control characters escaped."""
    safe = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    if not safe.isprintable():
        safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in safe)
    return safe + ("…" if len(text) > limit else "")


def child_path(parent: str, key: str) -> str:
    """AIP-161 field paths: `a.b`, with odd keys back-quoted (`a.`x.y``)."""
    if _PLAIN_KEY.fullmatch(key) and len(key) <= MAX_KEY_CHARS:
        return f"{parent}.{key}"
    return f"{parent}.`{shown(key).replace('`', '``')}`"


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored and read back, or None."""
    bad = _UNSTORABLE.search(text)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return "must not contain the NUL character (\\u0000)"
    return "must be valid Unicode (it holds a lone surrogate such as \\ud800)"


def value_violations(value: Any, field: str, *, max_depth: int = MAX_DEPTH) -> list[FieldViolation]:
    """Every problem of a JSON value (up to MAX_VIOLATIONS), each naming its field."""
    found: list[FieldViolation] = []
    # (value, field path, depth of the containers around it)
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack and len(found) < MAX_VIOLATIONS:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > max_depth:
                found.append(FieldViolation(path, f"nests deeper than {max_depth} levels"))
                continue
            if isinstance(item, list):
                stack.extend(
                    (v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(item)))
                )
                continue
            for key, child in reversed(list(item.items())):
                if not isinstance(key, str):
                    found.append(FieldViolation(path, "keys must be strings"))
                    continue
                where = child_path(path, key)
                problem = text_problem(key)
                if problem is not None:
                    found.append(FieldViolation(where, f"the key {problem}"))
                elif len(key) > MAX_KEY_CHARS:
                    found.append(
                        FieldViolation(where, f"the key is longer than {MAX_KEY_CHARS} characters")
                    )
                else:
                    stack.append((child, where, depth + 1))
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                found.append(FieldViolation(path, problem))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                found.append(
                    FieldViolation(
                        path,
                        f"integers must be between -2^53 and 2^53 ({MAX_SAFE_INTEGER}): "
                        "larger ones have no exact JSON number",
                    )
                )
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                found.append(FieldViolation(path, "must be a finite number (no NaN or infinity)"))
        else:
            found.append(FieldViolation(path, f"is not a JSON value ({type(item).__name__})"))
    return found


def check_input(input_data: Mapping[str, Any], field: str = "input_data") -> None:
    """Raise InvalidArgumentError unless `input_data` meets every door rule."""
    violations = value_violations(dict(input_data), field)
    if violations:
        raise InvalidArgumentError(_summary(field, violations), violations)


def id_violation(value: str, field: str, *, max_chars: int = MAX_ID_CHARS) -> FieldViolation | None:
    """Ids and request ids: 1 to `max_chars` printable characters (no NUL, no control
    character, no lone surrogate): what every backend stores and every log shows safely."""
    if not value:
        return FieldViolation(field, "is required")
    if len(value) > max_chars:
        return FieldViolation(field, f"must be at most {max_chars} characters long")
    problem = text_problem(value)
    if problem is not None:
        return FieldViolation(field, problem)
    if not value.isprintable():
        return FieldViolation(field, "must not contain control characters")
    return None


def check_id(value: str, field: str, *, max_chars: int = MAX_ID_CHARS) -> None:
    violation = id_violation(value, field, max_chars=max_chars)
    if violation is not None:
        raise InvalidArgumentError(f"{field} {violation.description}", [violation])


def check_optional_id(value: str | None, field: str) -> None:
    """An optional id (request_id): absent or empty is fine, anything else as check_id."""
    if value:
        check_id(value, field)


def check_text(value: str, field: str, *, max_chars: int = MAX_TEXT_CHARS) -> None:
    """Free text a caller stores (a cancel reason): bounded and storable."""
    if len(value) > max_chars:
        raise InvalidArgumentError(
            f"{field} is too long",
            [FieldViolation(field, f"must be at most {max_chars} characters long")],
        )
    problem = text_problem(value)
    if problem is not None:
        raise InvalidArgumentError(f"{field} {problem}", [FieldViolation(field, problem)])


def _summary(field: str, violations: list[FieldViolation]) -> str:
    count = len(violations)
    what = "a value" if count == 1 else f"{count} values" if count < MAX_VIOLATIONS else "values"
    return f"{field} holds {what} that cannot be accepted"
