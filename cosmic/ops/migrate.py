"""``twistd cosmic --migrate-only``: bring the schema up to date and exit.

A migration that fails is a child that failed to start: the root logs it in
one line and the process exits 1.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from cosmic.settings import Settings
from cosmic.store.service import migrate

log = Logger(namespace="cosmic.migrate")


class MigrateOnly(service.Service):
    name = "migrate"

    def __init__(self, settings: Settings, reactor: Any) -> None:
        self._settings = settings
        self._reactor = reactor

    def startService(self) -> defer.Deferred[None]:
        super().startService()
        return defer.ensureDeferred(self._run())

    async def _run(self) -> None:
        applied = await migrate(self._settings, self._reactor)
        if applied:
            log.info("applied migrations: {applied}", applied=", ".join(applied))
        else:
            log.info("schema already up to date")
        # Stop once the root has finished starting: this child's own start
        # must complete first, so the stop is scheduled, not called.
        self._reactor.callLater(0, self._reactor.stop)
