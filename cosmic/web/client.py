"""The web client's files (cosmic/web/static), served from memory.

The page is ``/`` (``Root`` in cosmic.web.site); its scripts, styles and
``rules.json`` (the rules table the client shows before it can ask: costs,
caps, research, upgrades) live under ``/client/<version>/``, where the
version is a digest of every file, so they can be cached for ever and a
deploy changes every URL at once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from twisted.web import server

from cosmic.game import rules
from cosmic.web.jsonapi import JsonResource, error_body, respond

STATIC_DIR = Path(__file__).parent / "static"
CLIENT_SEGMENT = b"client"
ASSETS_MARK = b"__ASSETS__"
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
# The page runs only its own scripts and styles and talks only to its origin
# ('self' covers ws:// to the same host and port in current browsers).
PAGE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def rules_table() -> dict[str, Any]:
    """What the client shows before it can ask: costs, caps, research, upgrades."""
    return {
        "resources": list(rules.RESOURCES),
        "garden_radius": rules.GARDEN_RADIUS,
        "kinds": {
            k.name: {"cost": dict(k.cost), "cap": k.cap, "requires": k.requires}
            for k in rules.KIND_BY_CODE
        },
        "research": {
            r.name: {
                "cost": dict(r.cost),
                "seconds": r.seconds,
                "requires": list(r.requires),
                "production": dict(r.production),
                "transcends": r.transcends,
            }
            for r in rules.RESEARCH.values()
        },
        "upgrades": {
            u.resource: {"bonus": u.bonus, "max_level": u.max_level}
            for u in rules.UPGRADES.values()
        },
        "life_stages": [s.name for s in rules.LIFE_STAGES],
    }


class ClientAssets:
    """The web client's files, read once at start.

    Assets live under /client/<version>/ where the version is a digest of
    every file: they can be cached forever, and a deploy changes every URL
    at once (ES modules import each other relatively, so they follow)."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        files = {
            path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file() and path.suffix in CONTENT_TYPES
        }
        if "index.html" not in files:
            raise RuntimeError(f"the web client is missing: no index.html in {directory}")
        files["rules.json"] = json.dumps(rules_table()).encode()
        page = files.pop("index.html")
        digest = hashlib.sha256()
        for name, body in sorted(files.items()):
            digest.update(name.encode() + b"\0" + body + b"\0")
        self.version = digest.hexdigest()[:16]
        self.prefix = f"/client/{self.version}"
        self.files = files
        self.page = page.replace(ASSETS_MARK, self.prefix.encode())
        self.page_etag = b'"%s"' % hashlib.sha256(self.page).hexdigest()[:16].encode()

    def routes(self) -> list[str]:
        return [f"{self.prefix}/{name}" for name in self.files]


def security_headers(request: server.Request) -> None:
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Referrer-Policy", b"no-referrer")


class ClientFiles(JsonResource):
    """``/client/<version>/<file>``: only the files read at start (no path walking)."""

    isLeaf = True

    def __init__(self, assets: ClientAssets) -> None:
        super().__init__()
        self.assets = assets

    def render_GET(self, request: server.Request) -> bytes:
        version, *parts = [p.decode("utf-8", "replace") for p in request.postpath] or [""]
        name = "/".join(parts)
        body = self.assets.files.get(name) if version == self.assets.version else None
        if body is None:
            return respond(request, 404, error_body("HTTP_404", "no such resource"))
        security_headers(request)
        request.setHeader(b"Content-Type", CONTENT_TYPES[Path(name).suffix])
        request.setHeader(b"Cache-Control", b"public, max-age=31536000, immutable")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body
