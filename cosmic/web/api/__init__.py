"""The REST API under /api/v1 (see routes.py for the table, router.py for the machinery)."""

from __future__ import annotations

from typing import Any

from cosmic.accounts import Accounts
from cosmic.web.api.router import ApiResource, Router, Services
from cosmic.web.api.routes import COMPONENTS, Api


def build_api(accounts: Accounts, persistence: Any, game: Any, limiter: Any) -> ApiResource:
    """The resource to mount at /api."""
    from cosmic.web.openapi import document

    holder: dict[str, Any] = {}
    api = Api(accounts, persistence, game, lambda: holder["document"])
    routes = api.routes()
    holder["document"] = document(routes, COMPONENTS)
    router = Router(routes, COMPONENTS)
    return ApiResource(router, Services(accounts.authenticate, limiter))


__all__ = ["ApiResource", "build_api"]
