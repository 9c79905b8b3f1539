"""The value parsers behind configspec.ini, including hostile input."""

from __future__ import annotations

import ipaddress

import pytest
from configobj.validate import ValidateError
from hypothesis import given
from hypothesis import strategies as st

from cosmic import configchecks
from cosmic.config import ConfigError, ConfigRequest, load

# pytest-twisted wraps hypothesis' inner test once per item, so a test that is
# both parametrized and @given nests the wrapping; draw the check instead.
checks = st.sampled_from(sorted(configchecks.CHECKS.values(), key=lambda f: f.__name__))


@given(check=checks, text=st.text())
def test_any_text_gives_a_value_or_a_validate_error(check, text: str) -> None:
    try:
        result = check(text)
    except ValidateError as exc:
        assert str(exc)
    else:
        assert isinstance(result, str)


@given(check=checks, value=st.one_of(st.integers(), st.none(), st.lists(st.text(), max_size=3)))
def test_non_text_is_a_type_error(check, value) -> None:
    with pytest.raises(ValidateError):
        check(value)


@given(address=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_ip_address_round_trips(address) -> None:
    assert ipaddress.ip_address(configchecks.ip_address(f" {address} ")) == address


@pytest.mark.parametrize("bad", ["localhost", "1.2.3", "::g", "", "10.0.0.256"])
def test_ip_address_refuses_names_and_garbage(bad: str) -> None:
    with pytest.raises(configchecks.VdtReasonError, match="IP address"):
        configchecks.ip_address(bad)


@pytest.mark.parametrize(
    "good",
    [
        "postgresql://u:p@127.0.0.1:5432/test",
        "postgres://h/db",
        "sqlite:///var/x.db",
        "sqlite:////abs/x.db",
    ],
)
def test_database_url_accepts(good: str) -> None:
    assert configchecks.database_url(good) == good


@pytest.mark.parametrize(
    "bad", ["mysql://h/db", "sqlite://x.db", "sqlite:///", "postgresql://", "", "/var/x.db"]
)
def test_database_url_refuses(bad: str) -> None:
    with pytest.raises(configchecks.VdtReasonError):
        configchecks.database_url(bad)


@pytest.mark.parametrize(
    "good", ["", "redis://127.0.0.1:6379/0", "redis://cache", "redis://h:1/15"]
)
def test_redis_url_accepts(good: str) -> None:
    assert configchecks.redis_url(good) == good


@pytest.mark.parametrize(
    "bad", ["http://h", "redis://", "redis://h:99999", "redis://h/x", "redis://h:port"]
)
def test_redis_url_refuses(bad: str) -> None:
    with pytest.raises(configchecks.VdtReasonError):
        configchecks.redis_url(bad)


@given(st.from_regex(r"/[a-z0-9_]{1,10}(/[a-z0-9_]{1,10}){0,3}", fullmatch=True))
def test_url_path_accepts_plain_paths(path: str) -> None:
    assert configchecks.url_path(path) == path


@pytest.mark.parametrize("bad", ["/", "metrics", "/a b", "/a?b", "//x", "/x#y"])
def test_url_path_refuses(bad: str) -> None:
    with pytest.raises(configchecks.VdtReasonError):
        configchecks.url_path(bad)


@given(st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True))
def test_metric_name_accepts_prometheus_names(name: str) -> None:
    assert configchecks.metric_name(name) == name


@given(port=st.integers())
def test_integer_keys_from_the_environment(port: int) -> None:
    req = ConfigRequest(environ={"SERVER_PORT": str(port)}, etc_dir=None)
    if 0 <= port <= 65535:
        assert load(req).server.port == port
    else:
        with pytest.raises(ConfigError) as caught:
            load(req)
        assert [p.key for p in caught.value.problems] == ["server.port"]


@given(text=st.text(max_size=30))
def test_any_environment_value_loads_or_names_its_key(text: str) -> None:
    environ = {"LOG_LEVEL": text, "SERVER_HOST": text, "DATABASE_URL": text}
    try:
        settings = load(ConfigRequest(environ=environ))
    except ConfigError as exc:
        assert {p.key for p in exc.problems} <= {"logging.level", "server.host", "database.url"}
    else:
        assert settings.logging.level == text


def test_describe_phrases_ranges_and_choices() -> None:
    validator = configchecks.make_validator()
    assert configchecks.describe(validator, "integer(min=1, max=9, default=2)") == (
        "a whole number from 1 to 9"
    )
    assert (
        configchecks.describe(validator, "float(min=0.5, default=1)") == "a number of at least 0.5"
    )
    assert configchecks.describe(validator, "option('a', 'b', default='a')") == "one of a, b"
    assert configchecks.describe(validator, "string(min=3, max=5, default='abc')") == (
        "text of 3 to 5 characters"
    )
