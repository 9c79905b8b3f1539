"""``twistd cosmic``: command-line options and the service tree."""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from twisted.logger import Logger
from twisted.python import usage

from cosmic import __version__
from cosmic import metrics as metrics_module
from cosmic.config import ConfigError, ConfigRequest, Reloader, load, shown_value
from cosmic.gameplay import build_game
from cosmic.logs import LogControl
from cosmic.ops import console
from cosmic.ops.gcpolicy import GcPolicy
from cosmic.ops.manhole import ManholeService
from cosmic.ops.migrate import MigrateOnly
from cosmic.ops.process import ProcessExit
from cosmic.ops.sdnotify import Notifier
from cosmic.ops.signals import SignalService
from cosmic.readiness import Readiness
from cosmic.service import RootService
from cosmic.settings import Settings
from cosmic.store.service import build_persistence
from cosmic.web.service import WebService, endpoint_description
from cosmic.web.site import build_site

EX_CONFIG = 78  # sysexits.h: configuration error

log = Logger(namespace="cosmic")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the Cosmic Gardener game daemon. Configuration layers, lowest first: "
        "built-in defaults, etc/<environment>.conf, the --config file (or $CONFIG_FILE), "
        "environment variables, the --env-file, then --host/--port/--set in the order given. "
        "An invalid configuration prints every problem and exits with status 78."
    )
    optFlags = [
        [
            "migrate-only",
            None,
            "Bring the database schema up to date, then exit "
            "(0 when done, 1 when the database refuses).",
        ],
    ]
    optParameters = [
        [
            "config",
            "c",
            None,
            "Configuration file layered over etc/<environment>.conf [default: $CONFIG_FILE].",
        ],
        [
            "env",
            "e",
            None,
            "Environment: development, production or test "
            "[default: $ENVIRONMENT, else development].",
        ],
        [
            "env-file",
            None,
            None,
            "File of NAME=VALUE settings layered over the process "
            "environment (see .env.development).",
        ],
        [
            "etc-dir",
            None,
            None,
            "Directory of <environment>.conf files "
            "[default: etc/ of a source checkout, else <prefix>/etc/cosmic].",
        ],
    ]

    def __init__(
        self,
        environ: dict[str, str] | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        super().__init__()
        self["set"] = []
        # The process edge: the only place the real environment is read.
        self.environ = dict(os.environ if environ is None else environ)
        self._stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr

    def opt_host(self, address: str) -> None:
        """Listen address, an IP literal (same as --set server.host=ADDRESS)."""
        self["set"].append(f"server.host={address}")

    def opt_port(self, port: str) -> None:
        """Listen port; 0 picks a free one (same as --set server.port=PORT)."""
        self["set"].append(f"server.port={port}")

    opt_p = opt_port

    def opt_set(self, assignment: str) -> None:
        """Override one key, as section.key=value; repeatable, last wins."""
        self["set"].append(assignment)

    def opt_version(self) -> None:
        """Print the version and exit."""
        self._stdout.write(f"cosmic-gardener {__version__}\n")
        raise SystemExit(0)

    def postOptions(self) -> None:
        request = ConfigRequest(
            environ=self.environ,
            environment=self["env"],
            config_file=self["config"],
            env_file=self["env-file"],
            overrides=tuple(self["set"]),
            etc_dir=self["etc-dir"],
        )
        try:
            self["settings"] = load(request)
        except ConfigError as exc:
            count = len(exc.problems)
            self._stderr.write(
                f"cosmic: invalid configuration ({count} problem{'s' if count != 1 else ''}):\n"
            )
            for problem in exc.problems:
                self._stderr.write(f"  {problem}\n")
            self._stderr.flush()
            raise SystemExit(EX_CONFIG) from None
        self["request"] = request


def _log_settings(settings: Settings) -> None:
    log.info(
        "cosmic-gardener {version} starting in {environment}",
        version=__version__,
        environment=settings.environment,
    )
    for key in settings:
        if settings.source(key) != "default":
            log.info(
                "setting {key} = {value} from {source}",
                key=key,
                value=shown_value(key, settings.get(key)),
                source=settings.source(key),
            )


def makeService(
    options: Options,
    reactor: Any = None,
    stream: IO[str] | None = None,
    on_fatal: Any = None,
) -> RootService:
    if reactor is None:
        from twisted.internet import reactor
    settings: Settings = options["settings"]
    control = LogControl(settings, stream or sys.stdout)
    reloader = Reloader(options["request"], settings)
    reloader.subscribe(control.on_reload)
    readiness = Readiness(reactor)

    notifier = Notifier(options.environ)
    root = RootService(
        reactor,
        readiness,
        on_fatal=on_fatal or ProcessExit(reactor),
        start_timeout=settings.server.start_timeout,
        log_observer=control.observer,
        stop_timeout=settings.server.shutdown_timeout,
    )
    root.on_started.append(lambda: notifier.ready("serving"))
    root.on_stopping.append(notifier.stopping)
    SignalService(reactor, reloader, notifier=notifier).setServiceParent(root)
    if options["migrate-only"]:
        MigrateOnly(settings, reactor).setServiceParent(root)
        return root
    metrics = metrics_module.create(settings.metrics.namespace)
    persistence = build_persistence(settings, reactor, metrics, readiness)
    persistence.store_service.setServiceParent(root)
    persistence.cache_service.setServiceParent(root)
    reloader.subscribe(persistence.on_reload)
    # The savers' stop deadline is a share of the daemon's shutdown budget, so
    # it has to count from when the whole stop begins, not from when their
    # turn comes after the loop and loader have used part of it.
    root.on_stopping.append(persistence.stopping)
    game = build_game(settings, reactor, metrics, persistence, readiness)
    game.loop.on_tick = notifier.watchdog  # a stalled loop stops the pings
    for child in game.services():
        child.setServiceParent(root)
    reloader.subscribe(game.on_reload)
    root.metrics = metrics
    root.persistence = persistence
    root.game = game
    site = build_site(
        readiness,
        settings=settings,
        metrics=metrics,
        persistence=persistence,
        game=game,
        reloader=reloader,
        reactor=reactor,
    )
    from cosmic.net import install_websocket  # the WebSocket protocol at /ws

    websocket = install_websocket(
        site.resource, settings, game, site.accounts, metrics, reactor, reloader=reloader
    )
    for child in websocket.services():
        child.setServiceParent(root)
    root.websocket = websocket
    listen = settings.server.endpoint or endpoint_description(
        settings.server.host, settings.server.port
    )
    WebService(site, listen, reactor).setServiceParent(root)
    root.reloader = reloader
    if settings.manhole.port or settings.manhole.ssh_port:
        ManholeService(settings, console.namespace(root), reactor).setServiceParent(root)
    # Last: it freezes what is alive once everything else has started.
    root.gc = GcPolicy(settings.runtime.gc_full_interval, metrics.gc, clock=reactor)
    root.gc.setServiceParent(root)
    _log_settings(settings)
    return root
