"""The frozen settings object every component receives.

``settings.server.port`` reads a validated value; ``settings.source("server.port")``
says which layer supplied it.  A reload builds a new object; nothing mutates
one in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any


class _Frozen:
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen; reload builds a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")


class Section(_Frozen):
    """One [section] of validated values, read as attributes."""

    __slots__ = ("_name", "_values")

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"no setting {self._name}.{key}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {dict(self._values)!r})"


class Settings(_Frozen):
    """All validated configuration, with the layer each value came from."""

    __slots__ = ("_sections", "_sources", "_values", "environment")

    def __init__(
        self, environment: str, values: Mapping[str, Any], sources: Mapping[str, str]
    ) -> None:
        grouped: dict[str, dict[str, Any]] = {}
        for dotted, value in values.items():
            section, key = dotted.split(".", 1)
            grouped.setdefault(section, {})[key] = value
        object.__setattr__(self, "environment", environment)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))
        object.__setattr__(self, "_sources", MappingProxyType(dict(sources)))
        object.__setattr__(
            self,
            "_sections",
            MappingProxyType({name: Section(name, keys) for name, keys in grouped.items()}),
        )

    def __getattr__(self, name: str) -> Section:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(f"no settings section [{name}]") from None

    def get(self, dotted: str) -> Any:
        return self._values[dotted]

    def source(self, dotted: str) -> str:
        return self._sources[dotted]

    def __iter__(self) -> Iterator[str]:
        """Every dotted key, in spec order."""
        return iter(self._values)

    def changed_keys(self, other: Settings) -> list[str]:
        """Keys whose value differs between self and other, in spec order."""
        return [key for key in self._values if self._values[key] != other._values.get(key)]

    def with_values_from(self, other: Settings, keys: list[str]) -> Settings:
        """A copy taking ``keys`` (values and sources) from ``other``."""
        values = dict(self._values)
        sources = dict(self._sources)
        for key in keys:
            values[key] = other._values[key]
            sources[key] = other._sources[key]
        return Settings(self.environment, values, sources)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self.environment == other.environment and self._values == other._values

    def __hash__(self) -> int:
        return hash((self.environment, tuple(sorted(self._values.items()))))

    def __repr__(self) -> str:
        return f"Settings({self.environment!r}, {len(self._values)} keys)"
