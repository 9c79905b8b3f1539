"""The listening side of the Site, as a child of the root service."""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.logger import Logger
from twisted.web import server

log = Logger(namespace="cosmic.web")


def endpoint_description(host: str, port: int) -> str:
    return f"tcp:port={port}:interface={quoteStringArgument(host)}"


class WebService(service.Service):
    """Listens for HTTP (and later WebSocket) on server.host:server.port."""

    name = "web"

    def __init__(self, site: server.Site, description: str, reactor: Any) -> None:
        self._site = site
        self._description = description
        self._reactor = reactor
        self.port: Any = None

    def startService(self) -> defer.Deferred[None]:
        super().startService()
        endpoint = serverFromString(self._reactor, self._description)
        return endpoint.listen(self._site).addCallback(self._listening)

    def _listening(self, port: Any) -> None:
        self.port = port
        address = port.getHost()
        log.info(
            "listening on http://{host}:{port}/",
            host=address.host,
            port=address.port,
            event="listening",
        )

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        return defer.maybeDeferred(port.stopListening)
