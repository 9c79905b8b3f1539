"""/metrics: parses with prometheus_client, counters move, labels are route templates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families

from cosmic.readiness import Check
from tests.unit.web.conftest import Served, serve
from tests.unit.web.test_api import V1, assert_error

NS = "cosmic_gardener"


async def scrape(api: Served, path: str = "/metrics") -> dict[str, list]:
    reply = await api.call("GET", path)
    assert reply.code == 200
    assert reply.header("Content-Type").startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(reply.raw.decode("utf-8")))
    return {family.name: family.samples for family in families}


def value(families: dict[str, list], name: str, **labels: str) -> float:
    family = name.removesuffix("_total").removesuffix("_count")
    for sample in families.get(family, []):
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return 0.0


@pytest_twisted.ensureDeferred
async def test_metrics_parse_and_counters_move(api: Served) -> None:
    before = await scrape(api)
    assert all(name.startswith(f"{NS}_") for name in before), sorted(before)
    for expected in (
        f"{NS}_http_requests",
        f"{NS}_http_request_duration_seconds",
        f"{NS}_process_cpu_seconds",
        f"{NS}_process_resident_memory_bytes",
        f"{NS}_physics_calculation_duration_seconds",
        f"{NS}_db_query_duration_seconds",
        f"{NS}_cache_requests",
        f"{NS}_game_ticks",
        f"{NS}_auth_events",
    ):
        assert expected in before, expected

    for _ in range(3):
        assert (await api.call("GET", "/no/such/page")).code == 404
    for garden in (5, 6):
        assert (await api.call("GET", f"{V1}/gardens/{garden}")).code == 404
    await api.player("ada")

    after = await scrape(api)
    total = f"{NS}_http_requests_total"
    assert value(after, total, method="GET", status="404") - value(
        before, total, method="GET", status="404"
    ) == pytest.approx(5)
    assert value(after, total, method="GET", status="200") >= 1  # the first scrape
    assert value(after, total, method="POST", status="201") == 1  # register
    assert value(after, total, method="POST", status="200") == 1  # login
    duration = f"{NS}_http_request_duration_seconds_count"
    assert value(after, duration, method="GET", route=f"{V1}/gardens/{{garden_id}}") == 2
    assert value(after, duration, method="GET", route="unmatched") == 3
    routes = {
        s.labels["route"]
        for s in after[f"{NS}_http_request_duration_seconds"]
        if "route" in s.labels
    }
    assert not any("/gardens/5" in route or "/no/such" in route for route in routes)
    events = f"{NS}_auth_events_total"
    assert value(after, events, event="register") == 1
    assert value(after, events, event="login_ok") == 1
    assert value(after, f"{NS}_auth_password_hash_duration_seconds_count", operation="hash") == 1


@pytest_twisted.ensureDeferred
async def test_metrics_head_405_and_openmetrics(api: Served) -> None:
    head = await api.call("HEAD", "/metrics")
    assert head.code == 200 and head.raw == b""
    assert_error(await api.call("POST", "/metrics"), 405, "HTTP_405")
    assert_error(await api.call("GET", "/metrics/x"), 404, "HTTP_404")
    open_metrics = await api.call(
        "GET", "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert open_metrics.header("Content-Type").startswith("application/openmetrics-text")
    assert open_metrics.raw.rstrip().endswith(b"# EOF")


@pytest.fixture
def custom() -> Iterator[Served]:
    yield from serve("metrics.namespace=garden", "metrics.path=/ops/metrics")


@pytest_twisted.ensureDeferred
async def test_namespace_and_path_come_from_config(custom: Served) -> None:
    families = await scrape(custom, "/ops/metrics")
    assert families and all(name.startswith("garden_") for name in families)
    assert_error(await custom.call("GET", "/metrics"), 404, "HTTP_404")
    assert (await custom.call("GET", "/ops")).code == 404


@pytest_twisted.ensureDeferred
async def test_readiness_still_fails_when_a_check_fails(api: Served) -> None:
    reply = await api.call("GET", "/health/ready")
    assert reply.code == 200, reply.body
    api.readiness.add("broken", lambda: Check.fail("simulated"))
    reply = await api.call("GET", "/health/ready")
    assert reply.code == 503 and reply.body["checks"]["broken"]["status"] == "fail"
    assert (await api.call("GET", "/health/live")).code == 200
