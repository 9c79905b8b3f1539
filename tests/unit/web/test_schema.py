"""The strict JSON parser and the schema validator behind every request."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosmic.web.api import routes
from cosmic.web.api.schema import (
    MalformedJson,
    SchemaError,
    dumps,
    jsonable,
    parse_json,
    validate,
)

REQUEST_SCHEMAS = st.sampled_from(
    [
        routes.REGISTER_BODY,
        routes.LOGIN_BODY,
        routes.REFRESH_BODY,
        routes.PATCH_ME_BODY,
        routes.CREATE_BODY,
    ]
)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["kind", "position", "name", "username", "password", "x"]) | st.text(),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@pytest.mark.parametrize(
    "text",
    [
        b"NaN",
        b"[Infinity]",
        b"[-Infinity]",
        b'{"a":1,"a":2}',
        b"1e400",
        b"-1e400",
        b"1" * 41,
        b"\xc3\x28",
        b"[" * 100 + b"]" * 100,
        b"{",
        b"",
    ],
)
def test_refused_documents(text: bytes) -> None:
    with pytest.raises(MalformedJson):
        parse_json(text)


def test_accepted_documents() -> None:
    assert parse_json(b'\xef\xbb\xbf{"a": [1, 2.5, "\\u00e9"]}') == {"a": [1, 2.5, "é"]}
    assert parse_json(b"1" * 40) == int("1" * 40)
    assert parse_json(b'"\\ud800"') == "\ud800"  # legal JSON; the validator refuses it


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_parser_raises_only_malformed_json(data: bytes) -> None:
    with contextlib.suppress(MalformedJson):
        parse_json(data)


@given(REQUEST_SCHEMAS, ANY_JSON)
@settings(max_examples=300, deadline=None)
def test_validator_raises_only_schema_errors(schema: dict, value: object) -> None:
    try:
        validate(schema, value, "body")
    except SchemaError as exc:
        assert exc.field.startswith("body")
        json.dumps(str(exc))  # always printable


def test_validator_rules() -> None:
    schema = routes.CREATE_BODY
    assert validate(schema, {"kind": "asteroid", "position": None}) == {
        "kind": "asteroid",
        "position": None,
    }
    cases = [
        ({"kind": True}, "body.kind", "a string"),
        ({"kind": "a", "position": [1, 2, 3, 4]}, "body.position", "at most 3"),
        ({"kind": "a", "position": [1, True, 3]}, "body.position[1]", "a number"),
        ({"kind": "a", "position": [10**400, 0, 0]}, "body.position[0]", "out of range"),
        ({"kind": "a", "parent_id": 1.5}, "body.parent_id", "whole number"),
        ({"kind": "a", "parent_id": -1}, "body.parent_id", "at least 0"),
        ({"kind": "a\x00"}, "body.kind", "NUL"),
        ({"kind": "\udfff"}, "body.kind", "surrogate"),
        ({"kind": "a", "extra\ud800": 1}, "body.'extra\\ud800'", "not a known field"),
        ({}, "body.kind", "required"),
        ([], "body", "an object"),
    ]
    for value, field, words in cases:
        with pytest.raises(SchemaError) as caught:
            validate(schema, value)
        assert caught.value.field == field
        assert words in caught.value.message


def test_output_is_plain_json() -> None:
    value = {"a": np.arange(3), "b": np.float64(1.5), 3: (np.int64(2),)}
    assert jsonable(value) == {"a": [0, 1, 2], "b": 1.5, "3": [2]}
    assert dumps({"x": "é"}) == '{"x":"é"}'.encode()
    assert dumps({"x": "\ud800"}) == b'{"x":"\\ud800"}'
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
