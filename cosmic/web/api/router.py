"""The route table's machinery: matching, parameters, bodies, auth, replies.

A ``Route`` says everything about one operation (method, path template,
parameters, body schema, auth, rate limit, responses); the router serves it
and ``cosmic.web.openapi`` documents it from the same object, so the
document matches what is served exactly.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from cosmic.web.api import errors
from cosmic.web.api.schema import MalformedJson, SchemaError, dumps, jsonable, parse_json, validate

log = Logger(namespace="cosmic.web.api")

AUTH_NONE, AUTH_OPTIONAL, AUTH_REQUIRED = "none", "optional", "required"
_SEGMENT = re.compile(r"\{([a-z_]+)\}\Z")
_INTEGER = re.compile(r"-?[0-9]{1,20}\Z")
_JSON_TYPES = (b"application/json",)


@attrs.frozen
class Param:
    name: str
    location: str  # "path" or "query"
    schema: dict[str, Any]
    description: str
    required: bool = True


@attrs.frozen
class Reply:
    status: int
    body: Any = None
    headers: Mapping[bytes, bytes] = attrs.field(factory=dict)


@attrs.frozen
class Call:
    """What a handler receives."""

    request: server.Request
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any
    account: Any  # AccountRecord, or None without auth
    claims: Any


Handler = Callable[[Call], Awaitable[Reply]]


@attrs.frozen
class Route:
    method: str
    template: str
    operation_id: str
    summary: str
    handler: Handler = attrs.field(repr=False)
    tag: str
    description: str = ""
    auth: str = AUTH_NONE
    rate_limited: bool = False
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    status: int = 200
    response: dict[str, Any] | None = None  # schema; None: no body (204)
    errors: tuple[int, ...] = ()  # statuses beyond the ones the router adds

    def error_statuses(self) -> list[int]:
        """Every error status this operation can answer, for the document."""
        found = set(self.errors) | {500}
        if self.body is not None:
            found |= {400, 413, 415, 422}
        if self.auth != AUTH_NONE:
            found |= {401, 503}
        if self.rate_limited:
            found.add(429)
        if any(p.location == "path" for p in self.params):
            found.add(404)
        if any(p.location == "query" for p in self.params):
            found.add(422)
        return sorted(found)


@attrs.frozen
class _Compiled:
    template: str
    parts: tuple[tuple[str, str], ...]  # ("literal", text) or ("param", name)
    routes: dict[str, Route]


def _compile(template: str) -> tuple[tuple[str, str], ...]:
    parts = []
    for segment in template.strip("/").split("/"):
        match = _SEGMENT.match(segment)
        parts.append(("param", match.group(1)) if match else ("literal", segment))
    return tuple(parts)


def _path_value(param: Param, raw: str) -> Any:
    """A path segment as its schema's type, or None when it cannot be one."""
    schema = param.schema
    value: Any = raw
    if schema.get("type") == "integer":
        if not _INTEGER.match(raw):
            return None
        value = int(raw)
    try:
        validate(schema, value, param.name)
    except SchemaError:
        return None
    return value


class Router:
    def __init__(
        self, routes: Sequence[Route], components: Mapping[str, Any] | None = None
    ) -> None:
        self.routes = tuple(routes)
        self.components = dict(components or {})
        compiled: dict[str, _Compiled] = {}
        for route in self.routes:
            entry = compiled.get(route.template)
            if entry is None:
                entry = compiled[route.template] = _Compiled(
                    route.template, _compile(route.template), {}
                )
            if route.method in entry.routes:
                raise ValueError(f"two routes for {route.method} {route.template}")
            entry.routes[route.method] = route
        self._table = list(compiled.values())

    def match(self, raw_path: bytes) -> tuple[_Compiled, dict[str, Any]] | None:
        """The template a request path matches and its path parameters, else None."""
        try:
            segments = [
                unquote_to_bytes(s).decode("utf-8") for s in raw_path.strip(b"/").split(b"/")
            ]
        except UnicodeDecodeError:
            return None
        if raw_path.endswith(b"/") and raw_path != b"/":
            return None
        for entry in self._table:
            if len(entry.parts) != len(segments):
                continue
            values: dict[str, Any] = {}
            for (kind, text), segment in zip(entry.parts, segments, strict=True):
                if kind == "literal":
                    if text != segment:
                        break
                    continue
                values[text] = segment
            else:
                return entry, values
        return None

    @staticmethod
    def allowed(entry: _Compiled) -> list[str]:
        methods = set(entry.routes)
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods | {"OPTIONS"})

    def template_for(self, raw_path: bytes) -> str | None:
        found = self.match(raw_path)
        return None if found is None else found[0].template

    def methods_for(self, raw_path: bytes) -> list[str] | None:
        found = self.match(raw_path)
        return None if found is None else self.allowed(found[0])


# -- replies ------------------------------------------------------------------------------


def send(request: server.Request, reply: Reply) -> None:
    """Write a reply (JSON body unless 204), unless the client has gone."""
    if request.finished or getattr(request, "_disconnected", False):
        return
    empty = reply.status == 204 or reply.body is None
    payload = b"" if empty else dumps(jsonable(reply.body))  # may raise: before any header
    request.setResponseCode(reply.status)
    for name, value in reply.headers.items():
        request.setHeader(name, value)
    request.setHeader(b"Cache-Control", b"no-store")
    if empty:
        request.responseHeaders.removeHeader(b"Content-Type")
        request.setHeader(b"Content-Length", b"0")
        request.finish()
        return
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Content-Length", b"%d" % len(payload))
    if request.method != b"HEAD":
        request.write(payload)
    request.finish()


def error_reply(error: errors.ApiError) -> Reply:
    return Reply(error.status, error.body(), error.headers)


# -- the resource ---------------------------------------------------------------------------


class Services:
    """What the router needs from the rest of the daemon (set by build_api)."""

    def __init__(self, authenticate: Callable[[str], Awaitable[Any]], limiter: Any) -> None:
        self.authenticate = authenticate
        self.limiter = limiter


class ApiResource(resource.Resource):
    """Serves every route under /api (a leaf: the router does the rest)."""

    isLeaf = True

    def __init__(self, router: Router, services: Services) -> None:
        super().__init__()
        self.router = router
        self.services = services

    def render(self, request: server.Request) -> int:
        found = self.router.match(request.path)
        if found is None:
            request.route = "unmatched"
            send(request, error_reply(errors.not_found()))
            return server.NOT_DONE_YET
        entry, raw_params = found
        request.route = entry.template
        method = request.method.decode("latin-1")
        allowed = self.router.allowed(entry)
        if method == "OPTIONS":
            send(request, Reply(204, headers={b"Allow": ", ".join(allowed).encode()}))
            return server.NOT_DONE_YET
        route = entry.routes.get("GET" if method == "HEAD" else method)
        if route is None:
            error = errors.ApiError(
                405,
                errors.NOT_ALLOWED,
                f"method not allowed; use {', '.join(allowed)}",
                headers={b"Allow": ", ".join(allowed).encode()},
            )
            send(request, error_reply(error))
            return server.NOT_DONE_YET
        d = defer.ensureDeferred(self._serve(request, route, raw_params))
        d.addErrback(self._failed, request, route)
        d.addCallback(self._send, request, route)
        return server.NOT_DONE_YET

    def _send(self, reply: Reply, request: server.Request, route: Route) -> None:
        try:
            send(request, reply)
        except Exception:  # e.g. a NaN in a game value: JSON refuses it
            failure = Failure()
            if request.startedWriting or request.finished:
                log.failure("failed writing a response", failure=failure)
                return
            send(request, self._failed(failure, request, route))

    def _failed(self, failure: Failure, request: server.Request, route: Route) -> Reply:
        error = errors.translate(failure.value)
        if error is None:
            log.failure(
                "unhandled error serving {method} {route} [{request_id}]",
                failure=failure,
                method=route.method,
                route=route.template,
                request_id=getattr(request, "request_id", None),
            )
            error = errors.ApiError(500, errors.INTERNAL, "internal error; it has been logged")
        return error_reply(error)

    async def _serve(self, request: server.Request, route: Route, raw: dict[str, str]) -> Reply:
        if route.rate_limited:
            wait = self.services.limiter.take(request, route.template)
            if wait is not None:
                raise wait
        path = {}
        for param in route.params:
            if param.location != "path":
                continue
            value = _path_value(param, raw[param.name])
            if value is None:
                raise errors.not_found()
            path[param.name] = value
        query = _query(request, route)
        account = claims = None
        if route.auth != AUTH_NONE:
            token = _bearer(request)
            if token is None and route.auth == AUTH_REQUIRED:
                raise errors.unauthorized(
                    errors.AUTH_MISSING, "this needs an access token: Authorization: Bearer <token>"
                )
            if token is not None:
                claims, account = await self.services.authenticate(token)
        components = self.router.components
        body = _body(request, route, components) if route.body is not None else None
        return await route.handler(Call(request, path, query, body, account, claims))


def _bearer(request: server.Request) -> str | None:
    raw = request.getHeader(b"Authorization")
    if raw is None:
        return None
    header = raw.decode("latin-1")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.unauthorized(
            errors.AUTH_MISSING, "use Authorization: Bearer <token> (no other scheme)"
        )
    return token.strip()


def _query(request: server.Request, route: Route) -> dict[str, Any]:
    values: dict[str, Any] = {}
    args = request.args or {}
    for param in route.params:
        if param.location != "query":
            continue
        raw = args.get(param.name.encode("ascii"))
        if not raw:
            if param.required:
                raise errors.invalid(param.name, "is required")
            if "default" in param.schema:
                values[param.name] = param.schema["default"]
            continue
        if len(raw) > 1:
            raise errors.invalid(param.name, "is given more than once")
        try:
            text = raw[0].decode("utf-8")
        except UnicodeDecodeError:
            raise errors.invalid(param.name, "is not UTF-8") from None
        value: Any = text
        if param.schema.get("type") == "integer":
            if not _INTEGER.match(text):
                raise errors.invalid(param.name, "must be a whole number")
            value = int(text)
        try:
            values[param.name] = validate(param.schema, value, param.name)
        except SchemaError as exc:
            raise errors.invalid(exc.field, exc.message) from None
    return values


def _body(request: server.Request, route: Route, components: Mapping[str, Any]) -> Any:
    request.content.seek(0)
    data = request.content.read()
    raw_type = request.getHeader(b"Content-Type")
    content_type = None if raw_type is None else raw_type.decode("latin-1")
    if content_type is None:
        if not data:
            raise errors.invalid("body", "a JSON body is required")
        raise errors.ApiError(
            415, errors.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"
        )
    media, *params = [p.strip() for p in content_type.split(";")]
    if media.lower() not in ("application/json",):
        raise errors.ApiError(
            415, errors.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise errors.ApiError(415, errors.UNSUPPORTED_MEDIA_TYPE, "JSON bodies are UTF-8")
    if not data.strip():
        raise errors.invalid("body", "a JSON body is required")
    try:
        body = parse_json(data)
    except MalformedJson as exc:
        raise errors.ApiError(400, errors.MALFORMED_JSON, str(exc)) from None
    try:
        return validate(route.body, body, "body", components)
    except SchemaError as exc:
        raise errors.invalid(exc.field, exc.message) from None
