"""The one twisted.web Site: health now; the API, /ws and /metrics join it."""

from __future__ import annotations

from twisted.web import server

from cosmic.readiness import Readiness
from cosmic.web.health import Health
from cosmic.web.jsonapi import JsonRequest, JsonResource, respond


class Root(JsonResource):
    def render_GET(self, request: server.Request) -> bytes:
        return respond(request, 200, {"service": "cosmic-gardener", "health": "/health/ready"})


def build_site(readiness: Readiness) -> server.Site:
    root = Root()
    root.putChild(b"health", Health(readiness))
    site = server.Site(root, requestFactory=JsonRequest)
    site.displayTracebacks = False
    site.noisy = False  # no 'Starting factory' lines; WebService logs the address
    return site
