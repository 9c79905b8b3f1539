"""The Prometheus exposition at ``metrics.path`` (default /metrics).

Serves the one registry of this process (``Metrics.registry``): every metric
the components define in cosmic.metrics plus the process collector, all under
the configured namespace.  Text format 0.0.4 by default; OpenMetrics when the
scraper asks for it in Accept.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from twisted.web import server

from cosmic.web.jsonapi import JsonResource


class MetricsResource(JsonResource):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: server.Request) -> bytes:
        accept = request.getHeader(b"Accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        payload = encoder(self._registry)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", b"%d" % len(payload))
        return payload

    render_HEAD = render_GET
