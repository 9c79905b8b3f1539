"""JSON in and out: a strict parser, a validator for the JSON Schema subset the
route table uses, and a converter of game values (numpy) to JSON.

The OpenAPI document publishes the very schemas this module checks requests
against, so the two cannot drift apart.  Supported keywords: type (a name or
a list of names), properties, required, additionalProperties, items,
minItems, maxItems, minLength, maxLength, pattern, minimum, maximum, enum,
and $ref to ``#/components/schemas/<name>``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

REF_PREFIX = "#/components/schemas/"
MAX_DEPTH = 64


class SchemaError(ValueError):
    """A value does not match its schema; ``field`` is a dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class MalformedJson(ValueError):
    """The body is not a JSON document this API accepts."""


# -- parsing ---------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedJson(f"duplicate key {_shown(key)}")
        result[key] = value
    return result


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJson(f"the number {text[:40]} is too large")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 40:
        raise MalformedJson("an integer has at most 40 digits")
    return int(text)


def parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, finite numbers,
    bounded integer size and nesting depth."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("the body is not UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            object_pairs_hook=_no_duplicates,
            parse_float=_float,
            parse_int=_int,
        )
    except MalformedJson:
        raise
    except RecursionError:
        raise MalformedJson("the JSON is nested too deeply") from None
    except ValueError as exc:
        raise MalformedJson(f"not valid JSON: {exc}") from None
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedJson(f"the JSON is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


# -- output -------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Game values (numpy arrays and scalars, tuples) as plain JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON; refuses NaN/Infinity (raises ValueError)."""
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate somewhere: escape everything
        text = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        return text.encode("ascii")


def _shown(text: str, limit: int = 40) -> str:
    """User text safe to echo in an error message (ASCII, bounded)."""
    shown = ascii(text[:limit])
    return shown + ("..." if len(text) > limit else "")


# -- validation ----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _type_matches(name: str, value: Any) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    raise ValueError(f"unsupported schema type {name!r}")


def _resolve(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith(REF_PREFIX) or seen > 16:
            raise ValueError(f"unsupported $ref {ref!r}")
        schema = components[ref[len(REF_PREFIX) :]]
        seen += 1
    return schema


def validate(
    schema: Mapping[str, Any],
    value: Any,
    field: str = "body",
    components: Mapping[str, Any] | None = None,
) -> Any:
    """The value, checked (numbers as given; raises SchemaError naming the field)."""
    schema = _resolve(schema, components or {})
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        matching = [n for n in names if _type_matches(n, value)]
        if not matching:
            wanted = " or ".join(_TYPE_NAMES[n] for n in names)
            raise SchemaError(field, f"must be {wanted}")
        kind = matching[0]
    else:
        kind = None
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(json.dumps(v) for v in schema["enum"])
        raise SchemaError(field, f"must be one of {options}")
    if kind == "string":
        _check_string(schema, value, field)
    elif kind in ("integer", "number"):
        _check_number(schema, value, field)
    elif kind == "array":
        _check_array(schema, value, field, components)
    elif kind == "object":
        _check_object(schema, value, field, components)
    return value


def _check_string(schema: Mapping[str, Any], value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaError(field, "is not valid Unicode (lone surrogate)") from None
    if "\x00" in value:
        raise SchemaError(field, "may not contain a NUL character")
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None and len(value) < low:
        raise SchemaError(field, f"needs at least {low} characters")
    if high is not None and len(value) > high:
        raise SchemaError(field, f"allows at most {high} characters")
    pattern = schema.get("pattern")
    if pattern is not None and not _pattern(pattern).search(value):
        raise SchemaError(field, f"must match {pattern}")


def _check_number(schema: Mapping[str, Any], value: int | float, field: str) -> None:
    try:
        as_float = float(value)
    except OverflowError:
        raise SchemaError(field, "is out of range") from None
    if not math.isfinite(as_float):
        raise SchemaError(field, "must be finite")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and value < low:
        raise SchemaError(field, f"must be at least {low}")
    if high is not None and value > high:
        raise SchemaError(field, f"must be at most {high}")


def _check_array(
    schema: Mapping[str, Any], value: list, field: str, components: Mapping[str, Any] | None
) -> None:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and len(value) < low:
        raise SchemaError(field, f"needs at least {low} items")
    if high is not None and len(value) > high:
        raise SchemaError(field, f"allows at most {high} items")
    items = schema.get("items")
    if items is not None:
        for index, item in enumerate(value):
            validate(items, item, f"{field}[{index}]", components)


def _check_object(
    schema: Mapping[str, Any], value: dict, field: str, components: Mapping[str, Any] | None
) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            raise SchemaError(f"{field}.{name}", "is required")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            validate(properties[name], item, f"{field}.{name}", components)
        elif extra is False:
            raise SchemaError(f"{field}.{_shown(name)}", "is not a known field")
        elif isinstance(extra, Mapping):
            validate(extra, item, f"{field}.{_shown(name)}", components)
