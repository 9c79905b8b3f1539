"""JSON responses and JSON errors for twisted.web.

Every response the Site sends, failures included, is a JSON body: a client
never sees twisted.web's HTML error pages or a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger
from twisted.web import http, resource, server
from twisted.web.error import UnsupportedMethod

log = Logger(namespace="cosmic.web")


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def respond(request: server.Request, status: int, body: Any) -> bytes:
    """Set status and headers for a JSON body and return the bytes to send."""
    payload = json_bytes(body)
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", b"%d" % len(payload))
    return payload


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def finish_json(request: server.Request, status: int, body: Any) -> None:
    """Write a JSON response later (after NOT_DONE_YET), unless the client left."""
    if request.finished or getattr(request, "_disconnected", False):
        return
    payload = respond(request, status, body)
    if request.method != b"HEAD":
        request.write(payload)
    request.finish()


class ErrorResource(resource.Resource):
    """A leaf that answers every method with one JSON error."""

    isLeaf = True

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__()
        self._status, self._code, self._message = status, code, message

    def render(self, request: server.Request) -> bytes:
        return respond(request, self._status, error_body(self._code, self._message))


def not_found() -> ErrorResource:
    return ErrorResource(http.NOT_FOUND, "HTTP_404", "no such resource")


class JsonResource(resource.Resource):
    """Unknown children are JSON 404s; unsupported methods are JSON 405s."""

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        return not_found()

    def render(self, request: server.Request) -> bytes | int:
        try:
            return super().render(request)
        except UnsupportedMethod as exc:
            allowed = b", ".join(sorted(exc.allowedMethods))
            request.setHeader(b"Allow", allowed)
            message = f"method not allowed; use {allowed.decode('ascii')}"
            return respond(request, http.NOT_ALLOWED, error_body("HTTP_405", message))


class JsonRequest(server.Request):
    """A request whose unexpected failures end in a JSON 500, logged once."""

    def processingFailed(self, reason: Any) -> Any:
        log.failure(
            "unhandled error serving {method} {path}",
            failure=reason,
            method=self.method.decode("latin-1"),
            path=self.path.decode("latin-1"),
        )
        if self.finished or self.startedWriting:
            if not self.finished:
                self.finish()
            return reason
        body = respond(
            self,
            http.INTERNAL_SERVER_ERROR,
            error_body("HTTP_500", "internal error; it has been logged"),
        )
        self.write(body)
        self.finish()
        return reason
