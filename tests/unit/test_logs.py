from __future__ import annotations

import io
import json

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure

from cosmic.logs import LogControl, event_as_json, event_as_text
from cosmic.settings import Settings


def settings(level: str = "info", fmt: str = "json") -> Settings:
    return Settings("test", {"logging.level": level, "logging.format": fmt}, {})


def logger_for(control: LogControl) -> Logger:
    publisher = LogPublisher(control.observer)
    return Logger(namespace="cosmic.test", observer=publisher)


def test_json_lines_carry_time_level_namespace_message_and_fields() -> None:
    stream = io.StringIO()
    log = logger_for(LogControl(settings(), stream))
    log.info("hello {who}", who="world", count=3, thing=object(), ratio=float("nan"))
    record = json.loads(stream.getvalue())
    assert record["level"] == "info"
    assert record["namespace"] == "cosmic.test"
    assert record["message"] == "hello world"
    assert record["time"].endswith("+00:00")
    assert record["who"] == "world"
    assert record["count"] == 3
    assert record["thing"].startswith("<object object")
    assert record["ratio"] == "nan"
    assert stream.getvalue().count("\n") == 1


def test_level_filter_and_reload() -> None:
    stream = io.StringIO()
    control = LogControl(settings(level="warn"), stream)
    log = logger_for(control)
    log.info("hidden")
    log.warn("shown")
    control.on_reload(settings(level="debug"), ("logging.level",))
    log.debug("now shown")
    control.on_reload(settings(level="error"), ("server.port",))  # level not in changed
    log.debug("still shown")
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["shown", "now shown", "still shown"]


def test_text_format_and_failures() -> None:
    stream = io.StringIO()
    log = logger_for(LogControl(settings(fmt="text"), stream))
    try:
        raise ValueError("bad thing")
    except ValueError:
        log.failure("it broke")
    text = stream.getvalue()
    assert "[cosmic.test#critical] it broke" in text
    assert "ValueError: bad thing" in text


def test_json_failure_has_traceback() -> None:
    event = {"log_format": "x", "log_level": None, "log_failure": Failure(KeyError("k"))}
    record = json.loads(event_as_json(event))
    assert "KeyError" in record["traceback"]
    assert record["level"] == "info"


def test_events_without_time_or_format_still_render() -> None:
    assert event_as_text({}).startswith("- [-#info]")
    assert json.loads(event_as_json({"log_time": float("inf")}))["time"] == "-"


def test_unformattable_event_is_reported_not_raised() -> None:
    stream = io.StringIO()
    control = LogControl(settings(), stream)

    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    control.observer(
        {"log_level": LogLevel.error, "log_namespace": "x", "log_format": "", "bad": Bad()}
    )
    assert "unformattable log event" in stream.getvalue()
