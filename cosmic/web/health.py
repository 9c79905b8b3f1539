"""/health/live and /health/ready."""

from __future__ import annotations

from twisted.internet import defer
from twisted.web import http, server

from cosmic.readiness import Readiness
from cosmic.web.jsonapi import JsonResource, error_body, finish_json, log, respond


class Live(JsonResource):
    """200 while the reactor serves requests: nothing else to check."""

    def render_GET(self, request: server.Request) -> bytes:
        return respond(request, http.OK, {"status": "alive"})

    render_HEAD = render_GET


class Ready(JsonResource):
    """200 when every readiness check passes (or is degraded), else 503."""

    def __init__(self, readiness: Readiness) -> None:
        super().__init__()
        self._readiness = readiness

    def render_GET(self, request: server.Request) -> int:
        d = defer.ensureDeferred(self._readiness.report())

        def answer(report):
            status = http.OK if report.ready else http.SERVICE_UNAVAILABLE
            finish_json(request, status, report.as_json())

        def broken(failure):
            log.failure("readiness report failed", failure=failure)
            finish_json(
                request,
                http.INTERNAL_SERVER_ERROR,
                error_body("HTTP_500", "readiness report failed"),
            )

        d.addCallbacks(answer, broken)
        return server.NOT_DONE_YET

    render_HEAD = render_GET


class Health(JsonResource):
    def __init__(self, readiness: Readiness) -> None:
        super().__init__()
        self.putChild(b"live", Live())
        self.putChild(b"ready", Ready(readiness))
