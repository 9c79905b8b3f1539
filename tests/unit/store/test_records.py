"""Record checks and migration file handling."""

from __future__ import annotations

import math

import pytest

from cosmic.store import records as r
from cosmic.store import schema
from cosmic.store.errors import InvalidValue, MigrationError, PoolExhausted


def test_username_key_is_nfc_casefold() -> None:
    assert r.username_key("Straße") == r.username_key("STRASSE") == "strasse"
    assert r.username_key("e\u0301") == r.username_key("\u00e9")
    assert r.username_key("ÉCLAIR") == "éclair"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\x00b", "NUL"),
        ("\udc80", "surrogate"),
        ("x" * 65, "65 characters long; the limit is 64"),
        ("", "must not be empty"),
        (b"bytes", "must be text"),
    ],
)
def test_text_checks(value: object, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        r.check_text("username", value, max_len=64, min_len=1)


def test_number_checks() -> None:
    assert r.check_float("x", 3) == 3.0
    for bad in (math.nan, math.inf, -math.inf, "1", True, None):
        with pytest.raises(InvalidValue):
            r.check_float("x", bad)
    with pytest.raises(InvalidValue, match="out of range"):
        r.check_int("x", 2**63)
    with pytest.raises(InvalidValue):
        r.check_int("x", 1.0)


def test_state_encoding() -> None:
    assert r.encode_state({"a": [1, 2.5, None, True, "ü"]}) == '{"a":[1,2.5,null,true,"ü"]}'
    for bad in ({"a": math.nan}, {1: 1}, {"a": {2: 3}}, {"a": "\x00"}, {"a": b"x"}, []):
        with pytest.raises(InvalidValue, match="state"):
            r.encode_state(bad)


def test_invalid_value_names_the_garden() -> None:
    error = InvalidValue("body.px", "must be finite, not nan", 7)
    assert str(error) == "body.px (garden 7): must be finite, not nan"
    assert error.garden_id == 7
    assert isinstance(error, ValueError)


def test_pool_exhausted_message() -> None:
    message = str(PoolExhausted(5.0, 20, 3))
    assert "within 5 s (database.acquire_timeout)" in message
    assert "all 20 connections" in message and "database.pool_max_size" in message
    assert "3 more queries are waiting" in message


def test_both_backends_have_the_same_migrations() -> None:
    pg = [m.name for m in schema.migrations("postgresql")]
    lite = [m.name for m in schema.migrations("sqlite")]
    assert pg == lite
    assert pg[0] == "0001_initial"


def test_changed_migration_is_refused() -> None:
    known = schema.migrations("sqlite")
    assert schema.pending(known, {}) == list(known)
    assert schema.pending(known, {1: known[0].checksum}) == list(known[1:])
    with pytest.raises(MigrationError, match="changed after it was applied"):
        schema.pending(known, {1: "0" * 64})
    assert schema.unknown_versions(known, {1: known[0].checksum, 999: "x"}) == [999]


def test_split_sqlite_statements() -> None:
    sql = (
        "-- a comment; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT ';');\n\n"
        "CREATE INDEX i ON a (x);\n-- trailing\n"
    )
    statements = schema.split_sqlite(sql)
    assert len(statements) == 2
    assert statements[0].endswith("DEFAULT ';');")
    assert statements[1].startswith("CREATE INDEX")
