"""Layered, validated configuration and its reload.

Layers, lowest first: the defaults in configspec.ini, ``etc/<environment>.conf``,
``CONFIG_FILE``, environment variables, ``--env-file``, ``--set``.  Every
problem in every layer is collected before anything is reported, so an
operator fixes a broken deployment in one pass instead of one error per start.
Nothing here reads ``os.environ``: the caller passes the environment in.
"""

from __future__ import annotations

import difflib
import ipaddress
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import attrs
from configobj import ConfigObj, ConfigObjError
from configobj.validate import ValidateError
from twisted.logger import Logger

from cosmic import configchecks, envfile
from cosmic.settings import Settings

SPEC_PATH = Path(__file__).with_name("configspec.ini")
ENVIRONMENTS = ("development", "production", "test")
DEFAULT_ENVIRONMENT = "development"

# Keys a SIGHUP applies to the running daemon; everything else needs a restart.
RELOADABLE = frozenset(
    {
        "http.max_body_bytes",
        "http.cors_origins",
        "http.cors_max_age",
        "http.trust_proxy",
        "auth.access_ttl",
        "auth.refresh_ttl",
        "auth.leeway",
        "auth.argon2_time_cost",
        "auth.argon2_memory_kib",
        "auth.argon2_parallelism",
        "auth.rate_limit_burst",
        "auth.rate_limit_per_minute",
        "ws.allowed_origins",
        "ws.max_connections",
        "ws.max_connections_per_address",
        "ws.handshake_rate_burst",
        "ws.handshake_rate_per_minute",
        "ws.message_rate_burst",
        "ws.message_rate_per_second",
        "ws.flood_close_after",
        "ws.max_protocol_errors",
        "ws.max_pending_requests",
        "ws.auth_timeout",
        "ws.resume_grace",
        "ws.max_observed",
        "ws.send_queue_bytes",
        "ws.slow_client_timeout",
        "ws.attributes_interval",
        "ws.idle_interval",
        "ws.broadcast_slice",
        "logging.level",
        "game.target_tps",
        "game.resource_interval",
        "game.broadcast_hz",
        "game.time_scale",
        "game.cleanup_interval",
        "game.unload_after",
        "game.offline_cap",
        "physics.simd_threshold",
        "physics.tree_threshold",
        "physics.theta",
        "physics.softening",
        "physics.openmp",
        "physics.openmp_threshold",
        "database.flush_interval",
        "database.health_check_interval",
    }
)

# The short environment names from the architecture; every key can also be
# set as COSMIC_<SECTION>_<KEY>.
ENV_ALIASES = {
    "SERVER_HOST": "server.host",
    "SERVER_PORT": "server.port",
    "DATABASE_URL": "database.url",
    "DB_POOL_MAX_SIZE": "database.pool_max_size",
    "REDIS_URL": "cache.redis_url",
    "JWT_SECRET": "auth.jwt_secret",
    "GAME_LOOP_TARGET_TPS": "game.target_tps",
    "PHYSICS_SIMD_THRESHOLD": "physics.simd_threshold",
    "COMPRESSION_ALGORITHM": "net.compression",
    "LOG_LEVEL": "logging.level",
    "LOG_FORMAT": "logging.format",
    "METRICS_PATH": "metrics.path",
    "MANHOLE_PORT": "manhole.port",
}
ENV_PREFIX = "COSMIC_"
# COSMIC_* names that belong to tooling, not to the daemon's configuration.
RESERVED_ENV_PREFIXES = ("COSMIC_TEST_", "COSMIC_BUILD_")
SELECTOR_NAMES = ("ENVIRONMENT", "CONFIG_FILE")

SECRET_KEYS = frozenset({"auth.jwt_secret"})
URL_KEYS = frozenset({"database.url", "cache.redis_url"})
MIN_PRODUCTION_SECRET = 32
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "your-secret-key",
        "your-256-bit-secret",
        "development-only-jwt-secret-never-use-in-production",
        "test-only-jwt-secret-not-for-any-real-deployment",
    }
)

log = Logger(namespace="cosmic.config")


@attrs.frozen
class Problem:
    """One thing wrong with the configuration, phrased for the operator."""

    key: str
    source: str
    reason: str
    value: str | None = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" = {self.value}"
        return f"{self.key}{shown} ({self.source}): {self.reason}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists everything wrong."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = tuple(problems)


@attrs.frozen
class ConfigRequest:
    """Everything a load reads, kept so that SIGHUP can read it all again."""

    environ: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    environment: str | None = None
    config_file: str | None = None
    env_file: str | None = None
    overrides: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    etc_dir: str | None = None


@attrs.frozen
class _Assignment:
    key: str
    raw: Any
    source: str


def shown_value(key: str, value: object) -> str:
    """A value as logs and errors may print it: secrets and passwords hidden."""
    if key in SECRET_KEYS:
        return f"<hidden, {len(str(value))} characters>"
    if key in URL_KEYS and isinstance(value, str) and "@" in value:
        scheme, _, rest = value.partition("://")
        credentials, _, host = rest.rpartition("@")
        if ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        return repr(f"{scheme}://{credentials}@{host}")
    return repr(value)


@cache
def _spec() -> dict[str, str]:
    """Dotted key -> check string, in spec order."""
    spec = ConfigObj(str(SPEC_PATH), list_values=False, _inspec=True, encoding="utf-8")
    return {
        f"{section}.{key}": check
        for section in spec.sections
        for key, check in spec[section].items()
    }


def spec_keys() -> list[str]:
    return list(_spec())


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def env_names() -> dict[str, str]:
    """Every environment variable name that sets a key -> that key."""
    names = {f"{ENV_PREFIX}{key.replace('.', '_').upper()}": key for key in _spec()}
    names.update(ENV_ALIASES)
    return names


def default_etc_dir() -> Path:
    """etc/ of a source checkout, else the data files pip installed."""
    checkout = Path(__file__).resolve().parent.parent / "etc"
    if (checkout / "cosmic.conf").is_file():
        return checkout
    return Path(sys.prefix) / "etc" / "cosmic"


def _file_layer(path: Path, label: str) -> tuple[list[_Assignment], list[Problem]]:
    known = _spec()
    if not path.is_file():
        return [], [Problem(label, "configuration file", "does not exist or is not a file")]
    try:
        parsed = ConfigObj(str(path), encoding="utf-8", interpolation=False, file_error=True)
    except ConfigObjError as exc:
        errors = getattr(exc, "errors", None) or [exc]
        return [], [
            Problem(label, f"line {getattr(e, 'line_number', '?')}", f"cannot parse: {e}")
            for e in errors
        ]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(label, "configuration file", f"cannot read: {exc}")]

    assignments: list[_Assignment] = []
    problems: list[Problem] = []
    sections = sorted({key.split(".")[0] for key in known})
    for name in parsed.scalars:
        problems.append(
            Problem(name, label, "is outside any [section]" + _suggest(name, list(known)))
        )
    for section in parsed.sections:
        if section not in sections:
            problems.append(
                Problem(f"[{section}]", label, "unknown section" + _suggest(section, sections))
            )
            continue
        for key in parsed[section].sections:
            problems.append(Problem(f"{section}.{key}", label, "subsections are not allowed"))
        for key in parsed[section].scalars:
            dotted = f"{section}.{key}"
            if dotted not in known:
                problems.append(
                    Problem(dotted, label, "unknown key" + _suggest(dotted, list(known)))
                )
            else:
                assignments.append(_Assignment(dotted, parsed[section][key], label))
    return assignments, problems


def _env_layer(
    pairs: list[tuple[str, str, str]], *, strict: bool
) -> tuple[list[_Assignment], list[Problem]]:
    """Assignments from (name, value, source) pairs; ``strict`` rejects unknown names."""
    names = env_names()
    assignments: dict[str, _Assignment] = {}
    problems: list[Problem] = []
    for name, value, source in pairs:
        key = names.get(name)
        if key is None:
            unknown = name not in SELECTOR_NAMES and (
                strict
                or (name.startswith(ENV_PREFIX) and not name.startswith(RESERVED_ENV_PREFIXES))
            )
            if unknown:
                hint = _suggest(name, [*names, *SELECTOR_NAMES])
                problems.append(Problem(name, source, "unknown variable" + hint))
            continue
        earlier = assignments.get(key)
        if earlier is not None and earlier.raw != value and earlier.source != source:
            problems.append(
                Problem(key, source, f"also set differently by {earlier.source}; keep one")
            )
        assignments[key] = _Assignment(key, value, source)
    return list(assignments.values()), problems


def _override_layer(overrides: tuple[str, ...]) -> tuple[list[_Assignment], list[Problem]]:
    known = list(_spec())
    assignments: list[_Assignment] = []
    problems: list[Problem] = []
    for override in overrides:
        dotted, sep, value = override.partition("=")
        dotted = dotted.strip()
        if not sep or "." not in dotted:
            problems.append(Problem(override, "--set", "expected section.key=value"))
        elif dotted not in known:
            problems.append(Problem(dotted, "--set", "unknown key" + _suggest(dotted, known)))
        else:
            assignments.append(_Assignment(dotted, value, "--set"))
    return assignments, problems


def _read_env_file(path: str) -> tuple[list[tuple[str, str, str]], list[Problem]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(path, "--env-file", f"cannot read: {exc}")]
    try:
        lines = envfile.parse(text)
    except envfile.EnvFileError as exc:
        return [], [Problem(path, f"--env-file line {exc.lineno}", exc.message)]
    return [(ln.name, ln.value, f"{path}:{ln.lineno} {ln.name}") for ln in lines], []


def _select(
    name: str, flag: str | None, file_pairs: list[tuple[str, str, str]], environ: Mapping
) -> tuple[str | None, str]:
    """A selector (ENVIRONMENT, CONFIG_FILE): the flag, else the env file, else the environment."""
    if flag is not None:
        return flag, "command line"
    for pair_name, value, source in reversed(file_pairs):
        if pair_name == name:
            return value, source
    if name in environ:
        return environ[name], f"environment variable {name}"
    return None, "default"


def _validate(
    assignments: list[_Assignment], problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check every assignment, overridden ones too: a bad value in a lower
    layer is a latent failure waiting for the override to go away."""
    validator = configchecks.make_validator()
    spec = _spec()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, check in spec.items():
        values[key] = validator.check(check, None, missing=True)
        sources[key] = "default"
    for assignment in assignments:
        check = spec[assignment.key]
        try:
            values[assignment.key] = validator.check(check, assignment.raw)
        except ValidateError as exc:
            problems.append(
                Problem(
                    assignment.key,
                    assignment.source,
                    configchecks.reason(validator, check, exc),
                    shown_value(assignment.key, assignment.raw),
                )
            )
        sources[assignment.key] = assignment.source
    return values, sources


def _policy_problems(environment: str, values: dict[str, Any], sources: dict[str, str]):
    """Settings that validate one by one but are unsafe together or in production."""
    if "manhole.port" in values and "manhole.host" in values and values["manhole.port"]:
        host = ipaddress.ip_address(values["manhole.host"])
        if not host.is_loopback and not values.get("manhole.passwd_file"):
            yield Problem(
                "manhole.host",
                sources["manhole.host"],
                "a manhole on a non-loopback address needs manhole.passwd_file",
                repr(values["manhole.host"]),
            )
    if values.get("manhole.ssh_port") and not values.get("manhole.authorized_keys"):
        yield Problem(
            "manhole.authorized_keys",
            sources["manhole.authorized_keys"],
            "the SSH manhole (manhole.ssh_port) takes keys only: name an authorized_keys file",
        )
    secret = values.get("auth.jwt_secret")
    if secret is None:
        return
    size = len(secret.encode("utf-8"))
    if environment == "production" and size < MIN_PRODUCTION_SECRET:
        reason = f"production needs at least {MIN_PRODUCTION_SECRET} characters"
    elif 0 < size < MIN_PRODUCTION_SECRET:
        # Empty means "a random key per process" outside production; a short
        # one is a mistake everywhere: HS256 wants 32 bytes of key.
        reason = f"a signing key needs at least {MIN_PRODUCTION_SECRET} bytes (or none at all)"
    elif environment == "production" and secret.strip().lower() in PLACEHOLDER_SECRETS:
        reason = "production refuses a known placeholder secret"
    else:
        return
    yield Problem(
        "auth.jwt_secret",
        sources["auth.jwt_secret"],
        reason,
        shown_value("auth.jwt_secret", secret),
    )


def load(request: ConfigRequest) -> Settings:
    """Read every layer and validate; raises ConfigError listing every problem."""
    problems: list[Problem] = []
    file_pairs: list[tuple[str, str, str]] = []
    if request.env_file is not None:
        file_pairs, file_problems = _read_env_file(request.env_file)
        problems += file_problems

    environment, env_source = _select(
        "ENVIRONMENT", request.environment, file_pairs, request.environ
    )
    environment = (environment or DEFAULT_ENVIRONMENT).strip().lower()
    layers: list[tuple[list[_Assignment], list[Problem]]] = []
    if environment not in ENVIRONMENTS:
        problems.append(
            Problem("environment", env_source, "must be one of " + ", ".join(ENVIRONMENTS))
        )
    else:
        etc = Path(request.etc_dir) if request.etc_dir else default_etc_dir()
        layers.append(_file_layer(etc / f"{environment}.conf", str(etc / f"{environment}.conf")))

    config_file, _ = _select("CONFIG_FILE", request.config_file, file_pairs, request.environ)
    if config_file:
        layers.append(_file_layer(Path(config_file), config_file))
    env_pairs = [
        (name, value, f"environment variable {name}") for name, value in request.environ.items()
    ]
    layers.append(_env_layer(env_pairs, strict=False))
    layers.append(_env_layer(file_pairs, strict=True))
    layers.append(_override_layer(request.overrides))

    assignments: list[_Assignment] = []
    for layer_assignments, layer_problems in layers:
        assignments += layer_assignments
        problems += layer_problems
    values, sources = _validate(assignments, problems)
    problems += _policy_problems(environment, values, sources)
    if problems:
        raise ConfigError(problems)
    return Settings(environment, values, sources)


@attrs.frozen
class ReloadOutcome:
    applied: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


Subscriber = Callable[[Settings, tuple[str, ...]], None]


class Reloader:
    """Holds the live settings; applies reloadable keys from a fresh load.

    A reload that fails validation changes nothing and logs every problem.
    """

    def __init__(self, request: ConfigRequest, settings: Settings) -> None:
        self.request = request
        self.current = settings
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(settings, changed_keys)`` after each applied reload."""
        self._subscribers.append(callback)

    def load(self) -> Settings:
        """Read all layers again (blocking file I/O: run it off the reactor)."""
        return load(self.request)

    def apply(self, fresh: Settings | ConfigError) -> ReloadOutcome:
        if isinstance(fresh, ConfigError):
            for problem in fresh.problems:
                log.error(
                    "reload refused, keeping the running configuration: {problem}",
                    problem=str(problem),
                    key=problem.key,
                )
            return ReloadOutcome(problems=fresh.problems)
        changed = fresh.changed_keys(self.current)
        applied = tuple(k for k in changed if k in RELOADABLE)
        deferred = tuple(k for k in changed if k not in RELOADABLE)
        for key in deferred:
            log.warn(
                "{key} changed to {value} but needs a restart to take effect",
                key=key,
                value=shown_value(key, fresh.get(key)),
            )
        if not applied:
            log.info("reload: no reloadable setting changed")
            return ReloadOutcome(needs_restart=deferred)
        before = self.current
        self.current = before.with_values_from(fresh, list(applied))
        for key in applied:
            log.info(
                "reload: {key} {old} -> {new}",
                key=key,
                old=shown_value(key, before.get(key)),
                new=shown_value(key, fresh.get(key)),
            )
        for callback in self._subscribers:
            try:
                callback(self.current, applied)
            except Exception:
                log.failure("reload subscriber {callback!r} failed", callback=callback)
        return ReloadOutcome(applied=applied, needs_restart=deferred)

    def reload_now(self) -> ReloadOutcome:
        """Load and apply in one blocking call (the manhole's reload())."""
        try:
            fresh: Settings | ConfigError = self.load()
        except ConfigError as exc:
            fresh = exc
        return self.apply(fresh)


def defaults_text() -> str:
    """etc/cosmic.conf: every key, commented out at its default, with its comment."""
    spec = ConfigObj(str(SPEC_PATH), list_values=False, _inspec=True, encoding="utf-8")
    validator = configchecks.make_validator()
    out = [
        "# Cosmic Gardener: every configuration key at its default (generated from",
        "# cosmic/configspec.ini by `python -m cosmic.config defaults`; do not edit).",
        "# Copy the lines you change into your CONFIG_FILE.",
    ]
    for section in spec.sections:
        out += ["", f"[{section}]"]
        for key, check in spec[section].items():
            comment = [c.strip() for c in spec[section].comments.get(key, []) if c.strip()]
            out += comment
            allowed = configchecks.describe(validator, check)
            default = validator.get_default_value(check)
            reloadable = " (reloadable)" if f"{section}.{key}" in RELOADABLE else ""
            out.append(f"# {allowed}{reloadable}; env {_env_name_for(f'{section}.{key}')}")
            out.append(f"# {key} = {default}".rstrip())
    return "\n".join(out) + "\n"


def _env_name_for(key: str) -> str:
    aliases = [name for name, target in ENV_ALIASES.items() if target == key]
    return aliases[0] if aliases else f"{ENV_PREFIX}{key.replace('.', '_').upper()}"


if __name__ == "__main__":  # pragma: no cover - exercised by tests/unit/test_config.py
    if sys.argv[1:] != ["defaults"]:
        sys.exit("usage: python -m cosmic.config defaults")
    sys.stdout.write(defaults_text())
