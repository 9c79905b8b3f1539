"""Every Prometheus metric the daemon exports, defined once.

Metrics live in a registry owned by one ``Metrics`` object (no module-level
collectors), so that two daemons in one test process, or a test and the code
it checks, never share counters.  Names start with the configured namespace.
"""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Physics steps run from microseconds (a few bodies) to tens of milliseconds.
_PHYSICS_BUCKETS = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    1e-2,
    2.5e-2,
    5e-2,
    0.1,
    0.25,
)


@attrs.frozen
class PhysicsMetrics:
    duration: Histogram
    bodies: Counter
    pairs: Counter
    implementation: Gauge

    @classmethod
    def create(cls, namespace: str, registry: CollectorRegistry) -> PhysicsMetrics:
        return cls(
            duration=Histogram(
                "physics_calculation_duration_seconds",
                "Wall time of one physics kernel call, by algorithm.",
                ["algorithm"],
                namespace=namespace,
                registry=registry,
                buckets=_PHYSICS_BUCKETS,
            ),
            bodies=Counter(
                "physics_bodies_simulated",
                "Body-steps simulated (bodies times steps), by algorithm.",
                ["algorithm"],
                namespace=namespace,
                registry=registry,
            ),
            pairs=Counter(
                "physics_pair_interactions",
                "Pairwise force evaluations (or tree equivalents), by algorithm.",
                ["algorithm"],
                namespace=namespace,
                registry=registry,
            ),
            implementation=Gauge(
                "physics_kernel_info",
                "1 for the kernel implementation in use (compiled or reference).",
                ["implementation"],
                namespace=namespace,
                registry=registry,
            ),
        )


@attrs.frozen
class Metrics:
    namespace: str
    registry: CollectorRegistry
    physics: PhysicsMetrics


def create(namespace: str = "cosmic_gardener") -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    return Metrics(
        namespace=namespace,
        registry=registry,
        physics=PhysicsMetrics.create(namespace, registry),
    )
