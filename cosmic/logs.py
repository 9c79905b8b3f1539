"""Log observers: text for people, JSON lines for machines, filtered by level.

All logging goes through twisted.logger.  The observer writes to the stream
it was given when built (twistd later redirects sys.stdout into the log
system itself, so capturing the stream late would loop).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
)
from zope.interface import implementer

from cosmic.settings import Settings

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


def _iso_time(event: dict[str, Any]) -> str:
    stamp = event.get("log_time")
    if not isinstance(stamp, int | float) or not math.isfinite(stamp):
        return "-"
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")


def _level_name(event: dict[str, Any]) -> str:
    level = event.get("log_level")
    return level.name if isinstance(level, type(LogLevel.info)) else "info"


def _failure_text(event: dict[str, Any]) -> str | None:
    failure = event.get("log_failure")
    if failure is None:
        return None
    try:
        return failure.getTraceback()
    except Exception:  # a broken Failure must not silence the log line
        return repr(failure)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def event_as_json(event: dict[str, Any]) -> str:
    """One JSON object: time, level, namespace, message, then the event's fields."""
    record: dict[str, Any] = {
        "time": _iso_time(event),
        "level": _level_name(event),
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if not key.startswith("log_") and key not in record and not key.startswith("_"):
            record[key] = _jsonable(value)
    failure = _failure_text(event)
    if failure is not None:
        record["traceback"] = failure
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def event_as_text(event: dict[str, Any]) -> str:
    line = (
        f"{_iso_time(event)} [{event.get('log_namespace', '-')}#{_level_name(event)}] "
        f"{formatEvent(event)}"
    )
    failure = _failure_text(event)
    return line if failure is None else f"{line}\n{failure.rstrip()}"


@implementer(ILogObserver)
class StreamObserver:
    """Writes each event as one line (text or JSON) and flushes it."""

    def __init__(self, stream: IO[str], fmt: str) -> None:
        self._stream = stream
        self._format = event_as_json if fmt == "json" else event_as_text

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            line = self._format(event)
        except Exception as exc:  # the log line about a bad event must still appear
            line = json.dumps({"level": "error", "message": f"unformattable log event: {exc!r}"})
        self._stream.write(line + "\n")
        self._stream.flush()


class LogControl:
    """The root observer plus the knob a reload turns (the level)."""

    def __init__(self, settings: Settings, stream: IO[str]) -> None:
        self.predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[settings.logging.level])
        self.observer = FilteringLogObserver(
            StreamObserver(stream, settings.logging.format), [self.predicate]
        )

    def on_reload(self, settings: Settings, changed: tuple[str, ...]) -> None:
        if "logging.level" in changed:
            self.predicate.setLogLevelForNamespace("", LEVELS[settings.logging.level])
