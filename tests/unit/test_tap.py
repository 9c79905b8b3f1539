"""``twistd cosmic`` options and the service tree they build."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel

from cosmic import tap
from cosmic.config import ConfigRequest


def parse(*argv: str, environ: dict | None = None) -> tuple[tap.Options, io.StringIO]:
    stderr = io.StringIO()
    options = tap.Options(environ=environ or {}, stdout=io.StringIO(), stderr=stderr)
    options.parseOptions(list(argv))
    return options, stderr


def test_host_port_and_set_keep_command_line_order() -> None:
    options, _ = parse(
        "--set", "server.port=1", "--port", "2", "--host", "::1", "--set", "logging.level=error"
    )
    assert options["set"] == [
        "server.port=1",
        "server.port=2",
        "server.host=::1",
        "logging.level=error",
    ]
    settings = options["settings"]
    assert (settings.server.port, settings.server.host, settings.logging.level) == (
        2,
        "::1",
        "error",
    )


def test_request_carries_every_input_for_reload(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("")
    env_file = tmp_path / ".env"
    env_file.write_text("")
    options, _ = parse(
        "--env",
        "test",
        "--config",
        str(conf),
        "--env-file",
        str(env_file),
        "-p",
        "0",
        environ={"HOME": "/x"},
    )
    assert options["request"] == ConfigRequest(
        environ={"HOME": "/x"},
        environment="test",
        config_file=str(conf),
        env_file=str(env_file),
        overrides=("server.port=0",),
        etc_dir=None,
    )


def test_invalid_configuration_exits_78_listing_every_problem() -> None:
    stderr = io.StringIO()
    options = tap.Options(environ={"LOG_LEVEL": "x"}, stderr=stderr)
    with pytest.raises(SystemExit) as caught:
        options.parseOptions(["--port", "http", "--set", "nope"])
    assert caught.value.code == tap.EX_CONFIG == 78
    lines = stderr.getvalue().splitlines()
    assert lines[0] == "cosmic: invalid configuration (3 problems):"
    assert sorted(line.split(" ")[2] for line in lines[1:]) == [
        "logging.level",
        "nope",
        "server.port",
    ]


def test_version_goes_to_stdout() -> None:
    stdout = io.StringIO()
    options = tap.Options(environ={}, stdout=stdout)
    with pytest.raises(SystemExit) as caught:
        options.parseOptions(["--version"])
    assert caught.value.code == 0
    assert stdout.getvalue().startswith("cosmic-gardener ")


def test_make_service_orders_children_and_logs_through_the_configured_format() -> None:
    options, _ = parse("--env", "test", "--set", "logging.level=info")
    reactor = MemoryReactorClock()
    stream = io.StringIO()
    fatal: list[int] = []
    root = tap.makeService(options, reactor=reactor, stream=stream, on_fatal=fatal.append)
    assert [child.name for child in root] == [
        "signals",
        "store",
        "cache",
        "persistence",
        "gardens",
        "game",
        "websocket",
        "web",
        "gc",
    ]
    assert root.gc.full_interval == 600.0
    assert root.reloader.current is options["settings"]
    # The savers' stop deadline counts from the start of the daemon's stop.
    assert root.persistence.stopping in root.on_stopping
    root._log_observer(
        {
            "log_level": LogLevel.info,
            "log_namespace": "cosmic.t",
            "log_format": "hello",
            "log_time": 0.0,
        }
    )
    assert json.loads(stream.getvalue())["message"] == "hello"


def test_migrate_only_builds_nothing_else() -> None:
    options, _ = parse("--env", "test", "--migrate-only")
    reactor = MemoryReactorClock()
    root = tap.makeService(
        options, reactor=reactor, stream=io.StringIO(), on_fatal=lambda code: None
    )
    assert [child.name for child in root] == ["signals", "migrate"]
