"""Layering, validation errors, production refusals and reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from cosmic import config
from cosmic.config import ConfigError, ConfigRequest, Reloader, load

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k" * 40


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    directory = tmp_path / "etc"
    directory.mkdir()
    for name in config.ENVIRONMENTS:
        (directory / f"{name}.conf").write_text("")
    return directory


def request(etc: Path, **kwargs) -> ConfigRequest:
    return ConfigRequest(etc_dir=str(etc), **kwargs)


def problems(etc: Path, **kwargs) -> list[config.Problem]:
    with pytest.raises(ConfigError) as caught:
        load(request(etc, **kwargs))
    return list(caught.value.problems)


def only(found: list[config.Problem], key: str) -> config.Problem:
    matching = [p for p in found if p.key == key]
    assert len(matching) == 1, found
    return matching[0]


# -- layering ----------------------------------------------------------------


def test_defaults_come_from_the_spec(etc: Path) -> None:
    settings = load(request(etc))
    assert settings.environment == "development"
    assert settings.server.port == 8080
    assert settings.server.host == "127.0.0.1"
    assert settings.logging.format == "text"
    assert settings.source("server.port") == "default"


def test_each_layer_overrides_the_one_below(etc: Path, tmp_path: Path) -> None:
    (etc / "development.conf").write_text(
        "[server]\nport = 1001\n[game]\ntarget_tps = 11\n"
        "[physics]\nsimd_threshold = 21\n[net]\n"
        "compression = none\n[metrics]\npath = /m1\n"
    )
    config_file = tmp_path / "site.conf"
    config_file.write_text(
        "[server]\nport = 1002\n[game]\ntarget_tps = 12\n"
        "[physics]\nsimd_threshold = 22\n[net]\ncompression = deflate\n"
    )
    env_file = tmp_path / ".env"
    env_file.write_text("SERVER_PORT=1004\nGAME_LOOP_TARGET_TPS=14\n")
    environ = {"SERVER_PORT": "1003", "GAME_LOOP_TARGET_TPS": "13", "PHYSICS_SIMD_THRESHOLD": "23"}
    settings = load(
        request(
            etc,
            environ=environ,
            config_file=str(config_file),
            env_file=str(env_file),
            overrides=("server.port=1005",),
        )
    )
    assert settings.metrics.path == "/m1"  # only etc/ sets it
    assert settings.net.compression == "deflate"  # CONFIG_FILE beats etc/
    assert settings.physics.simd_threshold == 23  # environment beats CONFIG_FILE
    assert settings.game.target_tps == 14  # env file beats environment
    assert settings.server.port == 1005  # --set beats everything
    assert settings.source("server.port") == "--set"
    assert settings.source("game.target_tps") == f"{env_file}:2 GAME_LOOP_TARGET_TPS"
    assert (
        settings.source("physics.simd_threshold") == "environment variable PHYSICS_SIMD_THRESHOLD"
    )
    assert settings.source("net.compression") == str(config_file)
    assert settings.source("metrics.path") == str(etc / "development.conf")


def test_later_overrides_win(etc: Path) -> None:
    settings = load(request(etc, overrides=("server.port=1", "server.port=2")))
    assert settings.server.port == 2


def test_every_key_has_a_prefixed_environment_name(etc: Path) -> None:
    environ = {"COSMIC_SERVER_START_TIMEOUT": "5", "COSMIC_LOGGING_LEVEL": "error"}
    settings = load(request(etc, environ=environ))
    assert settings.server.start_timeout == 5.0
    assert settings.logging.level == "error"


def test_environment_selection_order(etc: Path, tmp_path: Path) -> None:
    (etc / "test.conf").write_text("[server]\nport = 7\n")
    (etc / "production.conf").write_text("[auth]\njwt_secret = " + GOOD_SECRET + "\n")
    assert load(request(etc, environ={"ENVIRONMENT": "test"})).server.port == 7
    env_file = tmp_path / ".env"
    env_file.write_text("ENVIRONMENT=production\n")
    chosen = load(request(etc, environ={"ENVIRONMENT": "test"}, env_file=str(env_file)))
    assert chosen.environment == "production"
    flagged = load(request(etc, environ={"ENVIRONMENT": "production"}, environment="test"))
    assert flagged.environment == "test"


def test_config_file_from_environment_and_flag(etc: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("[server]\nport = 1\n")
    second.write_text("[server]\nport = 2\n")
    assert load(request(etc, environ={"CONFIG_FILE": str(first)})).server.port == 1
    flag = load(request(etc, environ={"CONFIG_FILE": str(first)}, config_file=str(second)))
    assert flag.server.port == 2


def test_unrelated_and_tooling_environment_variables_are_ignored(etc: Path) -> None:
    environ = {"HOME": "/root", "COSMIC_TEST_REQUIRE_SERVICES": "1", "COSMIC_BUILD_ARCH": "x"}
    assert load(request(etc, environ=environ)).server.port == 8080


# -- every error path ------------------------------------------------------------


def test_bad_type_and_out_of_range(etc: Path) -> None:
    found = problems(etc, environ={"SERVER_PORT": "eighty"}, overrides=("game.target_tps=0",))
    port = only(found, "server.port")
    assert port.value == "'eighty'"
    assert port.source == "environment variable SERVER_PORT"
    assert port.reason == "must be a whole number from 0 to 65535"
    tps = only(found, "game.target_tps")
    assert (tps.source, tps.reason) == ("--set", "must be a whole number from 1 to 240")


def test_unknown_key_and_section_suggest_the_nearest(etc: Path) -> None:
    (etc / "development.conf").write_text(
        "[server]\nprot = 1\n[logigng]\nlevel = info\nstray = 1\n"
    )
    found = problems(etc)
    assert "did you mean server.port?" in only(found, "server.prot").reason
    assert "did you mean logging?" in only(found, "[logigng]").reason


def test_top_level_keys_and_subsections_are_refused(etc: Path) -> None:
    (etc / "development.conf").write_text("port = 1\n[server]\n[[nested]]\nx = 1\n")
    found = problems(etc)
    assert "outside any [section]" in only(found, "port").reason
    assert only(found, "server.nested").reason == "subsections are not allowed"


def test_unknown_prefixed_environment_variable_suggests_the_nearest(etc: Path) -> None:
    found = problems(etc, environ={"COSMIC_SERVER_PROT": "1"})
    assert "did you mean COSMIC_SERVER_PORT?" in only(found, "COSMIC_SERVER_PROT").reason


def test_alias_and_prefixed_name_must_agree(etc: Path) -> None:
    environ = {"SERVER_PORT": "1", "COSMIC_SERVER_PORT": "2"}
    assert "keep one" in only(problems(etc, environ=environ), "server.port").reason
    same = load(request(etc, environ={"SERVER_PORT": "3", "COSMIC_SERVER_PORT": "3"}))
    assert same.server.port == 3


def test_env_file_rejects_unknown_names_and_bad_lines(etc: Path, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SERVR_PORT=1\n")
    assert (
        "did you mean SERVER_PORT?"
        in only(problems(etc, env_file=str(env_file)), "SERVR_PORT").reason
    )
    env_file.write_text("SERVER_PORT=1\nthis line is wrong\n")
    bad = only(problems(etc, env_file=str(env_file)), str(env_file))
    assert bad.source == "--env-file line 2"


def test_missing_files_are_problems(etc: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.conf")
    found = problems(etc, config_file=missing, env_file=str(tmp_path / "nope.env"))
    assert only(found, missing).reason == "does not exist or is not a file"
    assert "cannot read" in only(found, str(tmp_path / "nope.env")).reason
    (etc / "test.conf").unlink()
    assert (
        "does not exist" in only(problems(etc, environment="test"), str(etc / "test.conf")).reason
    )


def test_unparseable_file_reports_its_lines(etc: Path) -> None:
    (etc / "development.conf").write_text("[server\nport = 1\n[server]\nport = 1\nport = 2\n")
    found = problems(etc)
    assert found and all(p.key == str(etc / "development.conf") for p in found)
    assert any(p.source == "line 1" for p in found)


def test_malformed_set_and_unknown_environment(etc: Path) -> None:
    found = problems(etc, overrides=("serverport=1", "server.port"), environment="staging")
    assert [p.reason for p in found if p.source == "--set"] == ["expected section.key=value"] * 2
    assert "must be one of development, production, test" in only(found, "environment").reason


def test_overridden_bad_values_are_still_reported(etc: Path) -> None:
    (etc / "development.conf").write_text("[server]\nport = nope\n")
    found = problems(etc, overrides=("server.port=80",))
    assert only(found, "server.port").source == str(etc / "development.conf")


def test_all_problems_are_collected_at_once(etc: Path) -> None:
    (etc / "development.conf").write_text("[server]\nport = x\nprot = 1\n")
    found = problems(
        etc,
        environ={"LOG_LEVEL": "loud", "COSMIC_NET_COMPRESION": "lz4"},
        overrides=("metrics.namespace=9bad",),
    )
    assert {p.key for p in found} == {
        "server.port",
        "server.prot",
        "logging.level",
        "COSMIC_NET_COMPRESION",
        "metrics.namespace",
    }
    text = str(ConfigError(found))
    assert text.count("\n") == len(found) - 1


# -- production and safety rules -------------------------------------------------


@pytest.mark.parametrize("secret", ["", "short", "changeme", "x" * 31])
def test_production_refuses_short_or_empty_secrets(etc: Path, secret: str) -> None:
    found = problems(etc, environment="production", environ={"JWT_SECRET": secret})
    problem = only(found, "auth.jwt_secret")
    assert "at least 32 characters" in problem.reason
    assert secret == "" or secret not in str(problem)


@pytest.mark.parametrize("secret", sorted(s for s in config.PLACEHOLDER_SECRETS if len(s) >= 32))
def test_production_refuses_placeholders(etc: Path, secret: str) -> None:
    found = problems(etc, environment="production", environ={"JWT_SECRET": secret.upper()})
    assert "placeholder" in only(found, "auth.jwt_secret").reason


def test_production_accepts_a_real_secret(etc: Path) -> None:
    settings = load(request(etc, environment="production", environ={"JWT_SECRET": GOOD_SECRET}))
    assert settings.auth.jwt_secret == GOOD_SECRET


def test_development_accepts_a_placeholder_but_not_a_short_key(etc: Path) -> None:
    long_placeholder = "development-only-jwt-secret-never-use-in-production"
    assert load(request(etc, environ={"JWT_SECRET": long_placeholder})).auth.jwt_secret
    assert load(request(etc, environ={"JWT_SECRET": ""})).auth.jwt_secret == ""
    found = problems(etc, environ={"JWT_SECRET": "changeme"})
    assert "at least 32 bytes" in only(found, "auth.jwt_secret").reason


def test_public_manhole_needs_credentials(etc: Path) -> None:
    public = ("manhole.port=2222", "manhole.host=0.0.0.0")
    assert (
        "needs manhole.passwd_file" in only(problems(etc, overrides=public), "manhole.host").reason
    )
    assert load(request(etc, overrides=(*public, "manhole.passwd_file=/p"))).manhole.port == 2222
    assert load(request(etc, overrides=("manhole.port=2222", "manhole.host=::1"))).manhole.port


def test_secrets_and_url_passwords_never_appear_in_errors(etc: Path) -> None:
    found = problems(
        etc,
        environment="production",
        overrides=("auth.jwt_secret=hunter2", "database.url=mysql://u:pw@host/db"),
    )
    text = str(ConfigError(found))
    assert "hunter2" not in text
    assert "pw@" not in text
    assert config.shown_value("database.url", "postgresql://u:pw@h/d") == "'postgresql://u:***@h/d'"


# -- the shipped files -----------------------------------------------------------


@pytest.mark.parametrize("environment", config.ENVIRONMENTS)
def test_shipped_environment_files_load(environment: str) -> None:
    environ = {"JWT_SECRET": GOOD_SECRET} if environment == "production" else {}
    settings = load(
        ConfigRequest(environ=environ, environment=environment, etc_dir=str(ROOT / "etc"))
    )
    assert settings.environment == environment


def test_env_development_example_loads() -> None:
    settings = load(
        ConfigRequest(env_file=str(ROOT / ".env.development"), etc_dir=str(ROOT / "etc"))
    )
    assert settings.source("server.port").startswith(str(ROOT / ".env.development"))


def test_etc_cosmic_conf_is_generated_from_the_spec() -> None:
    assert (ROOT / "etc" / "cosmic.conf").read_text() == config.defaults_text()


def test_aliases_and_reloadable_keys_name_real_keys() -> None:
    keys = set(config.spec_keys())
    assert set(config.ENV_ALIASES.values()) <= keys
    assert keys >= config.RELOADABLE
    assert set(config.SECRET_KEYS | config.URL_KEYS) <= keys


def test_every_spec_key_has_a_default_and_a_range_or_choice() -> None:
    from cosmic import configchecks

    validator = configchecks.make_validator()
    for key, check in config._spec().items():
        assert "default=" in check, key
        described = configchecks.describe(validator, check)
        if check.startswith(("integer", "float", "string")):
            assert " to " in described or "at most" in described, key


# -- reload ----------------------------------------------------------------------


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_reload_applies_reloadable_keys_and_notifies(etc: Path, logged) -> None:
    conf = etc / "development.conf"
    conf.write_text("[logging]\nlevel = info\n")
    req = request(etc)
    reloader = Reloader(req, load(req))
    seen: list[tuple] = []
    reloader.subscribe(lambda settings, changed: seen.append((settings.logging.level, changed)))

    conf.write_text("[logging]\nlevel = error\n[server]\nport = 9\n")
    outcome = reloader.reload_now()
    assert outcome.ok
    assert outcome.applied == ("logging.level",)
    assert outcome.needs_restart == ("server.port",)
    assert reloader.current.logging.level == "error"
    assert reloader.current.server.port == 8080  # not reloadable: unchanged until restart
    assert seen == [("error", ("logging.level",))]
    assert any(e.get("key") == "server.port" and e["log_level"] == LogLevel.warn for e in logged)


def test_reload_with_errors_keeps_the_old_settings(etc: Path, logged) -> None:
    conf = etc / "development.conf"
    req = request(etc)
    reloader = Reloader(req, load(req))
    before = reloader.current
    conf.write_text("[logging]\nlevel = loud\n[game]\ntarget_tps = 0\n")
    outcome = reloader.reload_now()
    assert not outcome.ok
    assert {p.key for p in outcome.problems} == {"logging.level", "game.target_tps"}
    assert reloader.current is before
    errors = [e for e in logged if e["log_level"] == LogLevel.error]
    assert {e["key"] for e in errors} == {"logging.level", "game.target_tps"}


def test_reload_survives_a_failing_subscriber(etc: Path, logged) -> None:
    conf = etc / "development.conf"
    req = request(etc)
    reloader = Reloader(req, load(req))
    calls: list[str] = []

    def broken(settings, changed):
        raise RuntimeError("boom")

    reloader.subscribe(broken)
    reloader.subscribe(lambda settings, changed: calls.append(settings.logging.level))
    conf.write_text("[logging]\nlevel = warn\n")
    assert reloader.reload_now().applied == ("logging.level",)
    assert calls == ["warn"]
    assert any(e.get("log_failure") is not None for e in logged)


def test_reload_with_nothing_changed(etc: Path) -> None:
    req = request(etc)
    reloader = Reloader(req, load(req))
    before = reloader.current
    outcome = reloader.reload_now()
    assert outcome == config.ReloadOutcome()
    assert reloader.current is before


def test_readme_documents_every_key() -> None:
    readme = (ROOT / "README.rst").read_text()
    missing = [key for key in config.spec_keys() if key not in readme]
    assert missing == []
    for name in config.ENV_ALIASES:
        assert name in readme
