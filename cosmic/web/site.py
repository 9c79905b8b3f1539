"""The one twisted.web Site: the web client at / (assets under /client/),
/health, the REST API under /api/v1, and /metrics.

``build_site(readiness)`` alone gives the health Site (with the middleware);
``makeService`` passes everything else::

    site = build_site(readiness, settings=settings, metrics=metrics,
                      persistence=persistence, game=game, reloader=reloader,
                      reactor=reactor)

The WebSocket layer reuses ``site.tokens`` (a ``TokenVerifier``) and
``site.accounts.authenticate``.
"""

from __future__ import annotations

from typing import Any

from twisted.web import http, resource, server

from cosmic import metrics as metrics_module
from cosmic.accounts import Accounts
from cosmic.auth import Argon2Parameters, PasswordHasher, RunInThread, token_issuer
from cosmic.readiness import Readiness
from cosmic.settings import Settings
from cosmic.web.api import build_api
from cosmic.web.client import (
    CLIENT_SEGMENT,
    CONTENT_TYPES,
    PAGE_CSP,
    ClientAssets,
    ClientFiles,
    security_headers,
)
from cosmic.web.health import Health
from cosmic.web.jsonapi import JsonResource, error_body, respond
from cosmic.web.metrics import MetricsResource
from cosmic.web.middleware import Cors, CosmicSite, RateLimiter, TokenBucket

GET = ["GET", "HEAD", "OPTIONS"]
DEFAULT_MAX_BODY = 65536
API_SEGMENT = b"api"


DESCRIPTION = {
    "service": "cosmic-gardener",
    "client": "/",
    "health": "/health/ready",
    "api": "/api/v1/openapi.json",
    "websocket": "/ws",
}


def _wants_json(request: server.Request) -> bool:
    accept = (request.getHeader(b"Accept") or b"").lower()
    return b"application/json" in accept and b"text/html" not in accept


class Root(JsonResource):
    """``/``: the web client's page, or the service description for JSON clients."""

    def __init__(self, assets: ClientAssets) -> None:
        super().__init__()
        self.assets = assets

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Vary", b"Accept")
        if _wants_json(request):
            return respond(request, 200, DESCRIPTION)
        security_headers(request)
        request.setHeader(b"Content-Type", CONTENT_TYPES[".html"])
        # Revalidated on every visit: the page names the current asset version.
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"Content-Security-Policy", PAGE_CSP)
        if request.setETag(self.assets.page_etag) == http.CACHED:
            return b""
        request.setHeader(b"Content-Length", b"%d" % len(self.assets.page))
        return self.assets.page


class _Branch(JsonResource):
    """A path segment that only leads somewhere: 404 itself."""

    def render(self, request: server.Request) -> bytes:
        return respond(request, 404, error_body("HTTP_404", "no such resource"))


def _mount(root: resource.Resource, path: str, child: resource.Resource) -> None:
    """Put ``child`` at ``path`` (e.g. /metrics or /ops/metrics)."""
    segments = [s.encode("utf-8") for s in path.strip("/").split("/")]
    if segments[0] == API_SEGMENT:
        raise ValueError(f"metrics.path {path!r} would shadow the API under /api")
    node = root
    for segment in segments[:-1]:
        nxt = node.children.get(segment)
        if nxt is None:
            nxt = _Branch()
            node.putChild(segment, nxt)
        if nxt.isLeaf:
            raise ValueError(f"metrics.path {path!r} is inside another resource")
        node = nxt
    if segments[-1] in node.children:
        raise ValueError(f"metrics.path {path!r} is taken by another resource")
    node.putChild(segments[-1], child)


class SiteControl:
    """The live, reloadable parts of the Site (subscribed to the Reloader)."""

    def __init__(
        self,
        site: CosmicSite,
        limiter: RateLimiter | None,
        accounts: Accounts | None,
    ) -> None:
        self.site = site
        self.limiter = limiter
        self.accounts = accounts

    def on_reload(self, settings: Settings, changed: tuple[str, ...]) -> None:
        keys = set(changed)
        if keys & {"http.cors_origins", "http.cors_max_age"}:
            self.site.cors.configure(settings.http.cors_origins, settings.http.cors_max_age)
        if "http.max_body_bytes" in keys:
            self.site.max_body_bytes = settings.http.max_body_bytes
        if self.limiter is not None:
            if keys & {"auth.rate_limit_burst", "auth.rate_limit_per_minute"}:
                self.limiter.bucket.configure(
                    settings.auth.rate_limit_burst, settings.auth.rate_limit_per_minute
                )
            if "http.trust_proxy" in keys:
                self.limiter.trust_proxy = settings.http.trust_proxy
        if self.accounts is not None:
            auth = settings.auth
            if "auth.access_ttl" in keys:
                self.accounts.tokens.ttl = auth.access_ttl
            if "auth.leeway" in keys:
                self.accounts.tokens.leeway = auth.leeway
            if "auth.refresh_ttl" in keys:
                self.accounts.refresh_ttl = auth.refresh_ttl
            argon2 = {"auth.argon2_time_cost", "auth.argon2_memory_kib", "auth.argon2_parallelism"}
            if keys & argon2:
                self.accounts.hasher.configure(Argon2Parameters.from_settings(settings))


def build_site(
    readiness: Readiness,
    *,
    settings: Settings | None = None,
    metrics: metrics_module.Metrics | None = None,
    persistence: Any = None,
    game: Any = None,
    reloader: Any = None,
    reactor: Any = None,
    clock: Any = None,
    run_in_thread: RunInThread | None = None,
) -> CosmicSite:
    """The Site.  ``clock`` (default: the reactor) times tokens and rate limits;
    ``run_in_thread`` (default: the reactor's pool) runs password hashes."""
    if reactor is None:
        from twisted.internet import reactor
    clock = clock if clock is not None else reactor
    assets = ClientAssets()
    root = _Branch()
    # twisted.web asks the root for the child b"" when the path is "/".
    root.putChild(b"", Root(assets))
    root.putChild(CLIENT_SEGMENT, ClientFiles(assets))
    root.putChild(b"health", Health(readiness))
    static_routes = {"/": GET, "/health/live": GET, "/health/ready": GET}
    static_routes.update(dict.fromkeys(assets.routes(), GET))
    if metrics is not None:
        path = settings.metrics.path if settings is not None else "/metrics"
        _mount(root, path, MetricsResource(metrics.registry))
        static_routes[path] = GET

    accounts = limiter = api = None
    if settings is not None and persistence is not None and game is not None:
        auth = settings.auth
        hasher = PasswordHasher(
            Argon2Parameters.from_settings(settings),
            concurrency=auth.hash_concurrency,
            queue_max=auth.hash_queue_max,
            reactor=reactor,
            run_in_thread=run_in_thread,
            metrics=metrics.auth if metrics is not None else None,
        )
        accounts = Accounts(
            persistence.store,
            hasher,
            token_issuer(settings, clock),
            clock=clock,
            refresh_ttl=auth.refresh_ttl,
            metrics=metrics.auth if metrics is not None else None,
            sessions=persistence.sessions,
        )
        limiter = RateLimiter(
            TokenBucket(auth.rate_limit_burst, auth.rate_limit_per_minute, clock),
            settings.http.trust_proxy,
            metrics.http if metrics is not None else None,
        )
        api = build_api(accounts, persistence, game, limiter)
        root.putChild(API_SEGMENT, api)

    site = CosmicSite(
        root,
        http_metrics=metrics.http if metrics is not None else None,
        cors=Cors(settings.http.cors_origins, settings.http.cors_max_age)
        if settings is not None
        else Cors("", 0),
        max_body_bytes=settings.http.max_body_bytes if settings is not None else DEFAULT_MAX_BODY,
        static_routes=static_routes,
        api_router=api.router if api is not None else None,
        reactor=reactor,
    )
    site.assets = assets
    site.accounts = accounts
    site.tokens = accounts.tokens if accounts is not None else None
    site.api = api
    site.control = SiteControl(site, limiter, accounts)
    if reloader is not None:
        reloader.subscribe(site.control.on_reload)
    return site
