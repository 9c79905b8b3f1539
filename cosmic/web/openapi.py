"""The OpenAPI 3.1 document, generated from the route table.

Served at /api/v1/openapi.json.  Every operation, parameter, body schema and
error status comes from the ``Route`` objects the router serves, so the
document and the server cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cosmic import __version__
from cosmic.web.api.router import AUTH_NONE, AUTH_OPTIONAL, Route

ERROR_DESCRIPTIONS = {
    400: "Malformed request: not JSON, NaN/Infinity, duplicate keys, numbers too large "
    "(REQUEST_MALFORMED_JSON); or a command the game refuses as such (WS_GAME_012)",
    401: "No, malformed, expired or tampered access token, or wrong credentials "
    "(AUTH_MISSING_TOKEN, AUTH_TOKEN_*, AUTH_INVALID_CREDENTIALS, AUTH_REFRESH_*, "
    "AUTH_ACCOUNT_GONE)",
    404: "No such resource (HTTP_404)",
    409: "Conflicts with the current state (ACCOUNT_USERNAME_TAKEN, WS_GAME_001/002/005)",
    413: "Body larger than http.max_body_bytes (REQUEST_TOO_LARGE)",
    415: "Body is not Content-Type: application/json (REQUEST_UNSUPPORTED_MEDIA_TYPE)",
    422: "Well-formed JSON with invalid values (REQUEST_INVALID, with field; WS_GAME_*)",
    429: "Too many requests from this address (RATE_LIMITED); see Retry-After",
    500: "Internal error, logged with the request id (HTTP_500)",
    503: "Temporarily unavailable: database down, password hasher or game queue busy "
    "(SERVICE_UNAVAILABLE, AUTH_BUSY, WS_RATE_002); see Retry-After",
}

SUCCESS_DESCRIPTIONS = {200: "OK", 201: "Created", 204: "No content"}


def _headers(status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
    if status in (429, 503):
        headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    if status == 401:
        headers["WWW-Authenticate"] = {
            "description": "Bearer challenge",
            "schema": {"type": "string"},
        }
    return headers


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        operation["description"] = route.description
    parameters = [
        {
            "name": p.name,
            "in": p.location,
            "required": p.required or p.location == "path",
            "description": p.description,
            "schema": p.schema,
        }
        for p in route.params
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    if route.auth != AUTH_NONE:
        security: list[dict[str, list[str]]] = [{"bearerAuth": []}]
        if route.auth == AUTH_OPTIONAL:
            security.insert(0, {})
        operation["security"] = security
    success: dict[str, Any] = {
        "description": SUCCESS_DESCRIPTIONS.get(route.status, "OK"),
        "headers": _headers(route.status),
    }
    if route.response is not None:
        success["content"] = {"application/json": {"schema": route.response}}
    responses: dict[str, Any] = {str(route.status): success}
    for status in route.error_statuses():
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "headers": _headers(status),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    operation["responses"] = responses
    return operation


def document(routes: Sequence[Route], schemas: Mapping[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cosmic Gardener API",
            "version": __version__,
            "description": "REST API of the Cosmic Gardener daemon. Every error is "
            '{"error": {"code": ..., "message": ...}}; every response carries '
            "X-Request-Id. Access tokens are short-lived JWTs (Authorization: Bearer); "
            "refresh tokens rotate on every use.",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": name}
            for name in dict.fromkeys(route.tag for route in routes)  # first-seen order
        ],
        "paths": paths,
        "components": {
            "schemas": dict(schemas),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "headers": {
                "RequestId": {
                    "description": "This request's id (the client's X-Request-Id when it "
                    "sent a well-formed one); it appears in the daemon's log lines.",
                    "schema": {"type": "string"},
                },
                "RetryAfter": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                },
            },
        },
    }
