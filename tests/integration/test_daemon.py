"""A real ``twistd cosmic`` process over real sockets."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from tests.integration.daemon import TWISTD, Daemon, base_environ, run_twistd

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(tmp_path: Path):
    started: list[Daemon] = []

    def make(*args: str, **kwargs) -> Daemon:
        d = Daemon(tmp_path, *args, **kwargs)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


def test_twistd_lists_the_plugin(tmp_path: Path) -> None:
    result = run_twistd(tmp_path, "--help")
    assert result.returncode == 0
    line = next(ln for ln in result.stdout.splitlines() if ln.strip().startswith("cosmic "))
    assert "Cosmic Gardener" in line


def test_cosmic_help_documents_every_option(tmp_path: Path) -> None:
    result = run_twistd(tmp_path, "-n", "cosmic", "--help")
    assert result.returncode == 0
    for option in (
        "--config=",
        "--env=",
        "--env-file=",
        "--etc-dir=",
        "--host=",
        "--port=",
        "--set=",
    ):
        assert option in result.stdout


def test_serves_health_logs_json_and_exits_zero_on_sigterm(daemon) -> None:
    d = daemon().start()
    assert d.get("/health/live") == (200, {"status": "alive"})
    status, body = d.get("/health/ready")
    assert status == 200
    assert body["status"] == "ready"
    assert body["checks"]["startup"]["status"] == "ok"
    status, body = d.get("/no/such/thing")
    assert status == 404
    assert body["error"]["code"] == "HTTP_404"
    assert d.stop() == 0
    for line in d.lines:
        record = json.loads(line)
        assert {"time", "level", "namespace", "message"} <= record.keys()
    assert any(e["message"] == "received SIGTERM, shutting down" for e in d.events)


def test_text_logs_when_asked(daemon) -> None:
    d = daemon(env=base_environ(LOG_FORMAT="text"), json_logs=False)
    d.start(wait_listening=False)
    d.wait_line(lambda line: "[cosmic.web#info] listening on http://127.0.0.1:" in line)
    assert d.stop() == 0
    assert not any(line.startswith("{") for line in d.lines)


def test_sighup_applies_a_valid_change_and_keeps_config_on_a_bad_one(
    daemon, tmp_path: Path
) -> None:
    config = tmp_path / "cosmic.conf"
    config.write_text("[logging]\nlevel = debug\n")
    d = daemon("--config", str(config)).start()

    config.write_text("[logging]\nlevel = warn\n[game]\ntarget_tps = 30\n[server]\nhost = ::1\n")
    mark = d.mark()
    d.signal(signal.SIGHUP)
    applied = d.wait_for(lambda e: e.get("key") == "logging.level" and "old" in e, since=mark)
    assert (applied["old"], applied["new"]) == ("'debug'", "'warn'")
    d.wait_for(lambda e: e.get("key") == "game.target_tps" and "new" in e, since=mark)
    restart = d.wait_for(lambda e: e.get("key") == "server.host", since=mark)
    assert "needs a restart" in restart["message"]

    config.write_text("[logging]\nlevel = loud\n[server]\nport = -1\n")
    mark = d.mark()
    d.signal(signal.SIGHUP)
    refused = [
        d.wait_for(lambda e, k=key: e.get("key") == k and e["level"] == "error", since=mark)
        for key in ("logging.level", "server.port")
    ]
    assert all("keeping the running configuration" in e["message"] for e in refused)
    assert d.get("/health/live")[0] == 200  # still serving on the old settings
    assert d.stop() == 0
    # Level warn was applied: no debug or info line after the first reload.
    after = d.events[d.events.index(applied) + 1 :]
    assert {e["level"] for e in after} <= {"warn", "error", "critical"}


def test_bad_configuration_prints_every_problem_and_exits_78(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
    probe.close()
    bad = tmp_path / "bad.conf"
    bad.write_text(f"[server]\nport = {free_port}\nprot = 1\n[logging]\nlevel = chatty\n")
    env = base_environ(GAME_LOOP_TARGET_TPS="fast", COSMIC_SERVER_HOTS="x")
    result = run_twistd(
        tmp_path,
        "-n",
        "--pidfile=",
        "cosmic",
        "--config",
        str(bad),
        "--set",
        "metrics.path=nope",
        env=env,
    )
    assert result.returncode == 78
    errors = result.stderr
    assert "5 problems" in errors
    for fragment in (
        "server.prot",
        "did you mean server.port?",
        "logging.level = 'chatty'",
        "one of debug, info, warn, error, critical",
        "game.target_tps = 'fast' (environment variable GAME_LOOP_TARGET_TPS)",
        "COSMIC_SERVER_HOTS",
        "did you mean COSMIC_SERVER_HOST?",
        "metrics.path = 'nope' (--set)",
    ):
        assert fragment in errors
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port), timeout=2).close()


def test_production_refuses_a_placeholder_secret(tmp_path: Path) -> None:
    env = base_environ(JWT_SECRET="changeme")
    result = run_twistd(tmp_path, "-n", "--pidfile=", "cosmic", "--env", "production", env=env)
    assert result.returncode == 78
    assert "auth.jwt_secret = <hidden, 8 characters>" in result.stderr
    assert "changeme" not in result.stderr


def test_a_child_that_cannot_start_exits_non_zero_with_one_clear_line(daemon) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        d = daemon("--port", str(port)).start(wait_listening=False)
        line = d.wait_for(lambda e: e["level"] == "critical")
        assert line["message"].startswith("web failed to start: CannotListenError")
        assert f"127.0.0.1:{port}" in line["message"]
        d.drain()
        assert d.proc.wait(10) == 1
    finally:
        holder.close()


def test_twistd_binary_is_the_venvs() -> None:
    assert Path(TWISTD).is_file()


def test_migrate_only_applies_then_finds_nothing_to_do(tmp_path: Path) -> None:
    args = ("-n", "--pidfile=", "cosmic", "--env", "test", "--migrate-only")
    first = run_twistd(tmp_path, *args)
    assert first.returncode == 0, first.stdout[-2000:]
    assert "applied migrations: 0001_initial" in first.stdout
    assert (tmp_path / "var" / "test.sqlite3").is_file()
    second = run_twistd(tmp_path, *args)
    assert second.returncode == 0
    assert "schema already up to date" in second.stdout


def test_migrate_only_exits_1_when_the_database_refuses(tmp_path: Path) -> None:
    env = base_environ(DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    result = run_twistd(
        tmp_path, "-n", "--pidfile=", "cosmic", "--env", "test", "--migrate-only", env=env
    )
    assert result.returncode == 1
    critical = [json.loads(ln) for ln in result.stdout.splitlines() if '"critical"' in ln]
    assert [c["message"].split(":")[0] for c in critical] == ["migrate failed to start"]


def test_embedded_default_is_ready_with_store_and_cache(daemon) -> None:
    d = daemon().start()
    status, body = d.get("/health/ready")
    assert status == 200
    assert set(body["checks"]) >= {"startup", "store", "cache"}
    assert body["checks"]["store"]["status"] == "ok"
    assert "sqlite" in body["checks"]["store"]["detail"]
    assert d.stop() == 0


def test_postgresql_and_redis_when_configured(daemon) -> None:
    from tests.contract.servers import TempDatabase, pg_reachable, redis_reachable

    for problem in (pg_reachable(), redis_reachable()):
        if problem:
            pytest.skip(problem)
    database = TempDatabase().create()
    try:
        env = base_environ(
            DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{database.name}",
            REDIS_URL="redis://127.0.0.1:6379/0",
        )
        d = daemon(env=env).start()
        status, body = d.get("/health/ready")
        assert status == 200, body
        assert "postgresql" in body["checks"]["store"]["detail"]
        assert "redis" in body["checks"]["cache"]["detail"].lower()
        assert d.stop() == 0
        tables = {
            row[0]
            for row in database.execute(
                "select tablename from pg_tables where schemaname = 'public'"
            )
        }
        assert {"gardens", "bodies", "accounts"} <= tables
    finally:
        database.drop()
