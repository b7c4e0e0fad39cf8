"""A small JSON-schema subset for LLM output: bounded by construction, checked before use.

LLM output is untrusted. Every schema schedcp sends to a model must bound every
string (``maxLength``) and array (``maxItems``) and every number
(``minimum``/``maximum``): a weak model repeats itself until the token limit, so
an unbounded field is an invitation to garbage. :func:`check_bounded` enforces
that at definition time; :func:`validate` checks the answer at run time. Only
the keywords schedcp uses are supported, and an unknown keyword is an error
rather than silently ignored.
"""

from __future__ import annotations

import math
from typing import Any

from schedcp.errors import InvalidArgument, SchedcpError

_KNOWN = {
    "type", "properties", "required", "additionalProperties", "items", "enum",
    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
    "description", "title", "pattern",
}  # fmt: skip


class SchemaViolation(SchedcpError):
    """An LLM answer does not satisfy the schema it was asked for."""

    code = "llm_output_invalid"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(
            f"LLM output at {path or '$'}: {message}",
            hint="the answer is discarded; the planner retries or falls back",
            path=path,
        )
        self.path = path


def check_bounded(schema: dict[str, Any], path: str = "$") -> None:
    """Raise InvalidArgument unless every string, array and number in ``schema`` is bounded."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise InvalidArgument(f"schema {path} uses unsupported keywords {sorted(unknown)}")
    kind = schema.get("type")
    if "enum" in schema:
        return
    if kind == "string" and "maxLength" not in schema:
        raise InvalidArgument(f"schema {path}: string without maxLength")
    if kind == "array":
        if "maxItems" not in schema or "items" not in schema:
            raise InvalidArgument(f"schema {path}: array without maxItems/items")
        check_bounded(schema["items"], f"{path}[]")
    if kind in ("integer", "number") and ("minimum" not in schema or "maximum" not in schema):
        raise InvalidArgument(f"schema {path}: number without minimum/maximum")
    if kind == "object":
        if schema.get("additionalProperties", True) is not False:
            raise InvalidArgument(f"schema {path}: object must set additionalProperties false")
        for name, sub in schema.get("properties", {}).items():
            check_bounded(sub, f"{path}.{name}")


def validate(value: Any, schema: dict[str, Any], path: str = "") -> None:
    """Raise SchemaViolation if ``value`` does not satisfy ``schema``."""
    if "enum" in schema:
        if value not in schema["enum"]:
            raise SchemaViolation(path, f"{_short(value)} is not one of {schema['enum'][:12]}")
        return
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            raise SchemaViolation(path, "expected an object")
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise SchemaViolation(path, f"missing required field {name!r}")
        for name, item in value.items():
            if name not in props:
                if schema.get("additionalProperties", True) is False:
                    raise SchemaViolation(path, f"unexpected field {_short(name)}")
                continue
            validate(item, props[name], f"{path}.{name}")
    elif kind == "array":
        if not isinstance(value, list):
            raise SchemaViolation(path, "expected an array")
        if len(value) > schema.get("maxItems", math.inf) or len(value) < schema.get("minItems", 0):
            raise SchemaViolation(path, f"array of {len(value)} items is out of bounds")
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{path}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            raise SchemaViolation(path, "expected a string")
        if len(value) > schema.get("maxLength", math.inf) or len(value) < schema.get(
            "minLength", 0
        ):
            raise SchemaViolation(path, f"string of {len(value)} chars is out of bounds")
    elif kind in ("integer", "number"):
        # bool is an int subclass in Python; JSON true is not a number.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaViolation(path, "expected a number")
        if kind == "integer" and not float(value).is_integer():
            raise SchemaViolation(path, "expected an integer")
        if not math.isfinite(value):
            raise SchemaViolation(path, "number is not finite")
        if value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf):
            raise SchemaViolation(
                path, f"{value} outside [{schema.get('minimum')}, {schema.get('maximum')}]"
            )
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise SchemaViolation(path, "expected a boolean")
    elif kind is not None:
        raise SchemaViolation(path, f"unsupported schema type {kind!r}")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
