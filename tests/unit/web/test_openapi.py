"""The OpenAPI document matches the route table, and a client driven by the
document (hypothesis) finds no 5xx, no undocumented status, no non-JSON error
and no response that breaks its schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer

from cosmic.web.api.schema import validate
from tests.unit.web.conftest import PASSWORD, Served, serve

V1 = "/api/v1"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def served_document(api: Served) -> dict[str, Any]:
    reply = await api.call("GET", f"{V1}/openapi.json")
    assert reply.code == 200
    return reply.body


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), op)
        for path, item in sorted(doc["paths"].items())
        for method, op in sorted(item.items())
    ]


@pytest_twisted.ensureDeferred
async def test_document_matches_the_route_table_exactly(api: Served) -> None:
    doc = await served_document(api)
    router = api.site.api.router
    documented = {(path, method) for path, method, _ in operations(doc)}
    served = {(route.template, route.method) for route in router.routes}
    assert documented == served
    assert doc["openapi"] == "3.1.0"
    for path, method, op in operations(doc):
        # The router serves each documented operation at its documented path.
        example = re.sub(r"\{garden_id\}", "1", path).replace("{kind}", "total_mass")
        found = router.match(example.encode())
        assert found is not None and method in found[0].routes, (path, method)
        # Every path parameter is declared, and only those.
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path))
        route = found[0].routes[method]
        assert op["operationId"] == route.operation_id
        assert set(op["responses"]) == {str(route.status), *map(str, route.error_statuses())}
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


@pytest_twisted.ensureDeferred
async def test_every_reference_resolves(api: Served) -> None:
    doc = await served_document(api)
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(doc)
    assert refs
    for ref in refs:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


# -- the fuzzing client ----------------------------------------------------------------


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].split("/")[-1]]
    return schema


def from_schema(schema: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy:
    """Values that match a schema of the subset the API uses."""
    schema = _resolve(schema, components)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema.get("type", "object")
    if isinstance(types, list):
        return st.one_of([from_schema({**schema, "type": t}, components) for t in types])
    if types == "null":
        return st.none()
    if types == "boolean":
        return st.booleans()
    if types == "integer":
        return st.integers(schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1))
    if types == "number":
        return st.floats(
            schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
        ) | st.integers(-1000, 1000)
    if types == "string":
        if "examples" in schema:
            return st.sampled_from(schema["examples"]) | st.text(max_size=10)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        low = schema.get("minLength", 0)
        return st.text(min_size=low, max_size=min(schema.get("maxLength", 80), low + 80))
    if types == "array":
        items = from_schema(schema.get("items", {}), components)
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=schema.get("maxItems", low + 4))
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {k: from_schema(v, components) for k, v in properties.items() if k in required},
        optional={
            k: from_schema(v, components) for k, v in properties.items() if k not in required
        },
    )


ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
NASTY_TEXT = st.sampled_from(
    [
        "' OR 1=1 --",
        "'; DROP TABLE accounts; --",
        "\u0000",
        "\ud800",
        "🌌" * 40,
        "../../etc/passwd",
        "%00",
        "<script>alert(1)</script>",
        "9" * 40,
        "-0",
        "1e999",
        "NaN",
    ]
)
RAW_BODIES = st.sampled_from(
    [
        b"{",
        b'{"kind": NaN}',
        b'{"a": 1, "a": 2}',
        b"[" * 200,
        b"\xff\xfe\xfd",
        b'{"username": 1e999}',
        b"",
    ]
) | st.binary(max_size=200)


class Fuzzer:
    """Holds the served document, a valid session, and what it has seen."""

    def __init__(self, api: Served) -> None:
        self.api = api
        # Built in a fixture (the main greenlet), where blocking on a Deferred is allowed.
        self.doc = pytest_twisted.blockon(defer.ensureDeferred(served_document(api)))
        self.components = self.doc["components"]["schemas"]
        self.ops = operations(self.doc)
        self.token: str | None = None
        self.accounts = 0
        self.statuses: dict[tuple[str, str], set[int]] = {}

    async def fresh_token(self) -> str:
        self.accounts += 1
        name = f"fuzz{self.accounts}"
        await self.api.register(name)
        return (await self.api.login(name))["access_token"]

    async def valid_token(self) -> str:
        if self.token is None:
            self.token = await self.fresh_token()
        return self.token


@pytest.fixture(scope="module")
def fuzzer() -> Iterator[Fuzzer]:
    for api in serve("auth.rate_limit_burst=100000"):
        yield Fuzzer(api)


def _quoted(value: object) -> str:
    """Percent-encoded UTF-8 (lone surrogates too, as the invalid bytes they make)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def draw_request(data: st.DataObject, fz: Fuzzer) -> dict[str, Any]:
    path, method, op = data.draw(st.sampled_from(fz.ops), label="operation")
    url = path
    for param in op.get("parameters", []):
        if param["in"] != "path":
            continue
        value = data.draw(
            from_schema(param["schema"], fz.components)
            | NASTY_TEXT
            | st.text(min_size=1, max_size=20)
            | st.integers(),
            label=param["name"],
        )
        url = url.replace("{" + param["name"] + "}", _quoted(value))
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        if param["in"] == "query" and data.draw(st.booleans()):
            value = data.draw(
                from_schema(param["schema"], fz.components) | NASTY_TEXT | st.text(max_size=10)
            )
            query[param["name"]] = str(value)
    if query:
        url += "?" + "&".join(f"{name}={_quoted(value)}" for name, value in query.items())
    request: dict[str, Any] = {
        "op": (path, method),
        "method": method,
        "url": url,
        "auth": data.draw(st.sampled_from(["none", "valid", "valid", "garbage"]), label="auth"),
        "headers": {},
        "data": None,
    }
    if data.draw(st.integers(0, 19)) == 0:
        request["method"] = data.draw(st.sampled_from(METHODS), label="other method")
    body = op.get("requestBody")
    if body is not None:
        schema = body["content"]["application/json"]["schema"]
        kind = data.draw(st.sampled_from(["valid", "valid", "json", "nasty", "raw"]))
        if kind == "raw":
            request["data"] = data.draw(RAW_BODIES)
        else:
            if kind == "valid":
                value = data.draw(from_schema(schema, fz.components), label="body")
            elif kind == "nasty":
                value = data.draw(
                    st.dictionaries(
                        st.sampled_from(list(_resolve(schema, fz.components)["properties"])),
                        NASTY_TEXT | ANY_JSON,
                    ),
                    label="body",
                )
            else:
                value = data.draw(ANY_JSON, label="body")
            request["data"] = json.dumps(value).encode("utf-8")
        request["headers"]["Content-Type"] = data.draw(
            st.sampled_from(["application/json"] * 8 + ["text/plain", "application/xml"])
        )
    return request


async def send(fz: Fuzzer, request: dict[str, Any]) -> Any:
    token = None
    if request["auth"] == "garbage":
        token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."
    elif request["auth"] == "valid":
        deleting = request["method"] == "DELETE" and request["url"] == f"{V1}/players/me"
        if deleting:
            token = await fz.fresh_token()  # keep the main session alive
        else:
            token = await fz.valid_token()
    return await fz.api.call(
        request["method"],
        request["url"],
        token=token,
        headers=request["headers"],
        data=request["data"],
    )


def check(fz: Fuzzer, request: dict[str, Any], reply: Any) -> None:
    path, method = request["op"]
    op = fz.doc["paths"][path][method.lower()]
    assert reply.code < 500, (request, reply.body)
    if request["method"] == method:
        assert str(reply.code) in op["responses"], (request, reply.code, reply.body)
    elif request["method"] not in ("HEAD", "OPTIONS"):
        assert reply.code in (404, 405, 413, 415, 422, 400, 401, 409) or reply.code < 300
    fz.statuses.setdefault(request["op"], set()).add(reply.code)
    assert reply.header("X-Request-Id")
    if reply.code == 204 or request["method"] in ("HEAD", "OPTIONS"):
        return
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    body = json.loads(reply.raw)
    if reply.code >= 400:
        validate({"$ref": "#/components/schemas/Error"}, body, "response", fz.components)
        return
    if request["method"] == method:
        schema = op["responses"][str(reply.code)]["content"]["application/json"]["schema"]
        validate(schema, body, "response", fz.components)


@given(data=st.data())
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_client_driven_by_the_document_finds_no_5xx(
    fuzzer: Fuzzer, data: st.DataObject
) -> None:
    request = draw_request(data, fuzzer)
    reply = await send(fuzzer, request)
    check(fuzzer, request, reply)


@pytest_twisted.ensureDeferred
async def test_after_the_fuzzing_nothing_is_lost(fuzzer: Fuzzer) -> None:
    """The session's account still logs in and its garden still answers."""
    api = fuzzer.api
    token = await fuzzer.valid_token()
    me = await api.call("GET", f"{V1}/players/me", token=token)
    assert me.code == 200, me
    page = await api.call("GET", f"{V1}/celestial-bodies?limit=500", token=token)
    assert page.code == 200 and page.body["total"] >= 1
    assert page.body["items"][0]["kind"] == "star"
    login = await api.call(
        "POST",
        f"{V1}/auth/login",
        {"username": me.body["username"], "password": PASSWORD},
    )
    assert login.code == 200
    for garden_id in list(api.game.world.gardens):
        record = await api.store.load_garden(garden_id)
        assert record is not None  # every garden in memory is in the store

    # The fuzzer reached past the validation layer on the important routes.
    seen = fuzzer.statuses
    assert 201 in seen.get((f"{V1}/celestial-bodies", "POST"), set()) | seen.get(
        (f"{V1}/auth/register", "POST"), set()
    )
    assert 200 in seen.get((f"{V1}/celestial-bodies", "GET"), set())
