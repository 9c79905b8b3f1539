from __future__ import annotations

import pytest

from cosmic.settings import Settings


def make(**values) -> Settings:
    return Settings("test", values, {key: "default" for key in values})


def test_attribute_access_by_section() -> None:
    settings = make(**{"server.port": 1, "server.host": "::1", "logging.level": "info"})
    assert settings.server.port == 1
    assert settings.get("server.host") == "::1"
    assert sorted(settings.server) == ["host", "port"]
    assert list(settings) == ["server.port", "server.host", "logging.level"]


def test_unknown_names_raise_attribute_error() -> None:
    settings = make(**{"server.port": 1})
    with pytest.raises(AttributeError, match=r"no settings section \[nope\]"):
        settings.nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"no setting server\.nope"):
        settings.server.nope  # noqa: B018


def test_frozen() -> None:
    settings = make(**{"server.port": 1})
    with pytest.raises(AttributeError, match="frozen"):
        settings.environment = "production"
    with pytest.raises(AttributeError, match="frozen"):
        settings.server.port = 2
    with pytest.raises(TypeError):
        settings._values["server.port"] = 2


def test_changed_keys_and_partial_copy() -> None:
    old = make(**{"a.x": 1, "a.y": 2})
    new = Settings("test", {"a.x": 5, "a.y": 6}, {"a.x": "--set", "a.y": "--set"})
    assert new.changed_keys(old) == ["a.x", "a.y"]
    merged = old.with_values_from(new, ["a.x"])
    assert (merged.a.x, merged.a.y) == (5, 2)
    assert merged.source("a.x") == "--set"
    assert old.a.x == 1
    assert merged == Settings("test", {"a.x": 5, "a.y": 2}, {})
    assert hash(merged) == hash(Settings("test", {"a.x": 5, "a.y": 2}, {}))
