"""The garbage-collection policy: thresholds, freeze, the timed full
collection, and the pause metrics, with a fake collector and task.Clock."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from twisted.internet import task

from cosmic import metrics as metrics_module
from cosmic.ops.gcpolicy import NO_AUTOMATIC_FULL, GcPolicy


class FakeCollector:
    """The parts of the gc module the policy uses; collect() runs the callbacks
    like the interpreter does, around a collection that takes ``cost`` of the
    fake perf counter."""

    def __init__(self, perf: list[float]) -> None:
        self.callbacks: list[Any] = []
        self.thresholds = (700, 10, 10)
        self.frozen = 0
        self.collections: list[int] = []
        self.perf = perf
        self.cost = 0.25
        self.freed = 3

    def collect(self, generation: int = 2) -> int:
        self.run(generation, self.cost, self.freed)
        self.collections.append(generation)
        return self.freed

    def run(self, generation: int, cost: float, collected: int) -> None:
        for callback in self.callbacks:
            callback("start", {"generation": generation})
        self.perf[0] += cost
        for callback in self.callbacks:
            callback("stop", {"generation": generation, "collected": collected})

    def freeze(self) -> None:
        self.frozen = 1000

    def unfreeze(self) -> None:
        self.frozen = 0

    def get_freeze_count(self) -> int:
        return self.frozen

    def get_threshold(self) -> tuple[int, int, int]:
        return self.thresholds

    def set_threshold(self, *values: int) -> None:
        self.thresholds = values


def sample(m: metrics_module.Metrics, name: str, generation: str) -> float:
    value = m.registry.get_sample_value(name, {"generation": generation})
    return 0.0 if value is None else value


@pytest.fixture
def parts() -> tuple[GcPolicy, FakeCollector, task.Clock, metrics_module.Metrics]:
    perf = [100.0]
    collector = FakeCollector(perf)
    clock = task.Clock()
    m = metrics_module.create()
    policy = GcPolicy(600.0, m.gc, clock=clock, collector=collector, perf_counter=lambda: perf[0])
    return policy, collector, clock, m


def test_start_freezes_and_turns_automatic_full_collections_off(parts) -> None:
    policy, collector, _, _ = parts
    policy.startService()
    assert collector.collections == [2]  # one collection before the freeze
    assert collector.frozen == 1000
    assert collector.thresholds == (700, 10, NO_AUTOMATIC_FULL)
    policy.stopService()
    assert collector.thresholds == (700, 10, 10)
    assert collector.frozen == 0
    assert collector.callbacks == []


def test_a_full_collection_runs_every_interval(parts) -> None:
    policy, collector, clock, m = parts
    policy.startService()
    clock.advance(599)
    assert policy.full_collections == 0
    clock.advance(1)
    assert policy.full_collections == 1
    clock.advance(600)
    clock.advance(600)
    assert policy.full_collections == 3
    assert collector.collections == [2, 2, 2, 2]
    # The start's collection and the three timed ones, 0.25 s each.
    assert sample(m, "cosmic_gardener_gc_pause_seconds_count", "2") == 4
    assert sample(m, "cosmic_gardener_gc_pause_seconds_sum", "2") == pytest.approx(1.0)
    assert sample(m, "cosmic_gardener_gc_collected_objects_total", "2") == 12
    policy.stopService()
    clock.advance(6000)
    assert policy.full_collections == 3  # stopped means stopped


def test_every_collection_is_measured_by_generation(parts) -> None:
    policy, collector, _, m = parts
    policy.startService()
    collector.run(0, 0.002, 40)
    collector.run(0, 0.001, 2)
    collector.run(1, 0.03, 7)
    assert sample(m, "cosmic_gardener_gc_pause_seconds_count", "0") == 2
    assert sample(m, "cosmic_gardener_gc_pause_seconds_sum", "0") == pytest.approx(0.003)
    assert sample(m, "cosmic_gardener_gc_collected_objects_total", "0") == 42
    assert sample(m, "cosmic_gardener_gc_pause_seconds_sum", "1") == pytest.approx(0.03)
    # A 30 ms pause lands in the 50 ms bucket, not the 25 ms one.
    assert (
        m.registry.get_sample_value(
            "cosmic_gardener_gc_pause_seconds_bucket", {"generation": "1", "le": "0.025"}
        )
        == 0
    )
    assert (
        m.registry.get_sample_value(
            "cosmic_gardener_gc_pause_seconds_bucket", {"generation": "1", "le": "0.05"}
        )
        == 1
    )
    policy.stopService()


def test_zero_interval_only_measures(parts) -> None:
    _, collector, clock, m = parts
    policy = GcPolicy(0.0, m.gc, clock=clock, collector=collector)
    policy.startService()
    assert collector.thresholds == (700, 10, 10)
    assert collector.frozen == 0
    assert collector.collections == []
    collector.run(2, 0.0, 1)
    assert sample(m, "cosmic_gardener_gc_pause_seconds_count", "2") == 1
    clock.advance(10_000)
    assert collector.collections == []
    policy.stopService()
    assert collector.callbacks == []


def test_the_real_collector_round_trip() -> None:
    """Against the real gc module: thresholds and freeze are put back."""
    before = gc.get_threshold()
    m = metrics_module.create()
    clock = task.Clock()
    policy = GcPolicy(600.0, m.gc, clock=clock)
    policy.startService()
    try:
        assert gc.get_threshold()[2] == NO_AUTOMATIC_FULL
        assert gc.get_freeze_count() > 0
        assert policy.collect_full() >= 0
        assert sample(m, "cosmic_gardener_gc_pause_seconds_count", "2") >= 2
    finally:
        policy.stopService()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
