"""The rules table: every tunable number of the game, in one place.

Units: length AU, mass solar masses (M☉), game time in years (G = 4π²).
Production, life and research timers run in seconds of play (the resource
tick is 1 Hz); ``TIME_SCALE`` maps a second of play to game years for the
physics.  Nothing here imports Twisted or does I/O.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import attrs

G = 4.0 * math.pi**2
EARTH_MASS = 3.003e-6  # M☉

# Game years that pass per second of play: a 1 AU orbit takes 50 s to watch.
TIME_SCALE = 0.02
GARDEN_RADIUS = 100.0  # AU; beyond twice this a body has escaped
SOFTENING = 1e-3  # AU
MAX_SPEED = 200.0  # AU/year; faster placements are refused
MAX_BODIES = 10_000
OFFLINE_CAP_SECONDS = 24 * 3600.0
NAME_MAX = 64

RESOURCES = (
    "cosmic_dust",
    "energy",
    "organic_matter",
    "biomass",
    "dark_matter",
    "thought_points",
)

STARTING_RESOURCES = MappingProxyType({"cosmic_dust": 500.0})
BASE_DUST_PER_SECOND = 1.0


@attrs.frozen
class BodyKind:
    name: str
    code: int
    cost: MappingProxyType
    cap: int
    mass: float  # M☉ when created
    radius: float  # AU when created (game radii: large enough to collide)
    dust_per_second: float = 0.0
    requires: str | None = None  # research that unlocks creating it
    orbit: tuple[float, float] = (2.0, 10.0)  # default orbit radius range, AU


def _kind(name: str, code: int, cost: dict, cap: int, mass: float, radius: float, **kw):
    return BodyKind(name, code, MappingProxyType(cost), cap, mass, radius, **kw)


KINDS = MappingProxyType(
    {
        k.name: k
        for k in (
            _kind(
                "asteroid",
                0,
                {"cosmic_dust": 100},
                1000,
                1e-9,
                0.01,
                dust_per_second=0.5,
                orbit=(2.2, 3.3),
            ),
            _kind(
                "comet",
                1,
                {"cosmic_dust": 500},
                1000,
                1e-10,
                0.01,
                dust_per_second=0.5,
                orbit=(5.0, 30.0),
            ),
            _kind("moon", 2, {"cosmic_dust": 1000}, 500, 3.7e-8, 0.02),
            _kind("dwarf_planet", 3, {"cosmic_dust": 2500}, 100, 7e-9, 0.03, orbit=(30.0, 50.0)),
            _kind("planet", 4, {"cosmic_dust": 10000}, 200, EARTH_MASS, 0.05, orbit=(0.7, 2.0)),
            _kind(
                "gas_giant",
                5,
                {"cosmic_dust": 25000, "energy": 1000},
                100,
                1e-3,
                0.1,
                orbit=(4.0, 30.0),
            ),
            _kind(
                "star",
                6,
                {"cosmic_dust": 1000, "energy": 500},
                50,
                1.0,
                0.3,
                requires="stellar_formation",
                orbit=(20.0, 60.0),
            ),
            _kind(
                "black_hole",
                7,
                {"energy": 5000, "dark_matter": 100},
                10,
                10.0,
                0.05,
                requires="gravitational_engineering",
                orbit=(40.0, 80.0),
            ),
        )
    }
)
KIND_BY_CODE = tuple(sorted(KINDS.values(), key=lambda k: k.code))

# A body that grows past a mass becomes the next kind (if under that kind's cap).
PROMOTIONS = MappingProxyType(
    {
        "asteroid": ("dwarf_planet", 5e-9),
        "comet": ("dwarf_planet", 5e-9),
        "dwarf_planet": ("planet", 1e-6),
        "moon": ("planet", 1e-6),
        "planet": ("gas_giant", 10 * EARTH_MASS),
        "gas_giant": ("star", 0.08),
        "star": ("black_hole", 3.0),
    }
)

# Stars: energy per second = luminosity = mass^3.5 (M☉ units), capped.
LUMINOSITY_EXPONENT = 3.5
LUMINOSITY_CAP = 1e4
# Black holes: dark matter per accreted mass, counted in Earth masses.
DARK_MATTER_PER_ACCRETED_EARTH_MASS = 0.1

# Habitable zone as stellar flux relative to Earth's (L/d² with L in L☉, d in AU):
# the classic 0.95..1.37 AU band around a 1 L☉ star.
HABITABLE_FLUX = (1.0 / 1.37**2, 1.0 / 0.95**2)


@attrs.frozen
class LifeStage:
    name: str
    code: int
    capacity: float  # logistic carrying capacity
    growth: float  # logistic rate per second
    advance_population: float  # population needed to advance
    advance_seconds: float  # and seconds spent in the stage
    organic: float = 0.0  # per second
    biomass: float = 0.0
    thought_per_million: float = 0.0


LIFE_STAGES = (
    LifeStage("none", 0, 0.0, 0.0, 0.0, 60.0),  # 60 s in the zone starts microbial life
    LifeStage("microbial", 1, 1e6, 0.05, 5e5, 120.0),
    LifeStage("plant", 2, 1e7, 0.03, 5e6, 300.0, organic=0.5, biomass=0.1),
    LifeStage("animal", 3, 1e8, 0.02, 5e7, 600.0, organic=0.8, biomass=0.3),
    LifeStage(
        "intelligent",
        4,
        1e10,
        0.01,
        math.inf,
        math.inf,
        organic=1.0,
        biomass=0.5,
        thought_per_million=0.1,
    ),
)
LIFE_BY_NAME = MappingProxyType({s.name: s for s in LIFE_STAGES})
INITIAL_POPULATION = 1e3
# Outside the zone life stalls; after this many seconds outside, it dies.
LIFE_STALL_SECONDS = 120.0
# Surviving a merger halves a population.
MERGER_POPULATION_FACTOR = 0.5


@attrs.frozen
class Upgrade:
    resource: str
    bonus: float  # production multiplier per level: (1 + bonus) ** level
    base_cost: float  # paid in the same resource
    growth: float  # cost multiplier per level
    max_level: int = 100

    def cost(self, level: int) -> float:
        """What buying level+1 costs when at ``level``."""
        return self.base_cost * self.growth**level

    def multiplier(self, level: int) -> float:
        return (1.0 + self.bonus) ** level


UPGRADES = MappingProxyType(
    {
        u.resource: u
        for u in (
            Upgrade("cosmic_dust", 0.50, 50.0, 1.5),
            Upgrade("energy", 0.30, 100.0, 1.8),
            Upgrade("organic_matter", 0.20, 100.0, 2.0),
            Upgrade("biomass", 0.15, 100.0, 2.2),
            Upgrade("dark_matter", 0.10, 50.0, 2.6),
            Upgrade("thought_points", 0.05, 100.0, 3.0),
        )
    }
)


@attrs.frozen
class Research:
    name: str
    cost: MappingProxyType
    seconds: float
    requires: tuple[str, ...] = ()
    # Effects: production multipliers by resource, life growth, zone width.
    production: MappingProxyType = MappingProxyType({})
    life_growth: float = 1.0
    zone_width: float = 1.0
    transcends: bool = False


def _research(name: str, cost: dict, seconds: float, requires=(), production=None, **kw):
    return Research(
        name,
        MappingProxyType(cost),
        seconds,
        tuple(requires),
        MappingProxyType(production or {}),
        **kw,
    )


RESEARCH = MappingProxyType(
    {
        r.name: r
        for r in (
            _research(
                "orbital_mechanics", {"cosmic_dust": 1000}, 60.0, production={"cosmic_dust": 1.25}
            ),
            _research(
                "stellar_formation",
                {"cosmic_dust": 3000, "energy": 200},
                120.0,
                requires=["orbital_mechanics"],
            ),
            _research(
                "nuclear_fusion",
                {"energy": 2000},
                180.0,
                requires=["stellar_formation"],
                production={"energy": 1.5},
            ),
            _research(
                "genetic_engineering",
                {"organic_matter": 500, "biomass": 100},
                120.0,
                life_growth=1.5,
            ),
            _research(
                "exobiology",
                {"organic_matter": 2000, "biomass": 500},
                180.0,
                requires=["genetic_engineering"],
                zone_width=1.2,
            ),
            _research(
                "gravitational_engineering",
                {"energy": 10000, "cosmic_dust": 20000},
                300.0,
                requires=["nuclear_fusion"],
            ),
            _research(
                "dark_matter_theory",
                {"dark_matter": 500, "thought_points": 1000},
                300.0,
                requires=["gravitational_engineering"],
                production={"dark_matter": 1.5},
            ),
            _research(
                "consciousness_studies",
                {"thought_points": 5000, "biomass": 2000},
                300.0,
                requires=["exobiology"],
                production={"thought_points": 1.5},
            ),
            _research(
                "dimensional_physics",
                {"dark_matter": 10000, "thought_points": 50000},
                600.0,
                requires=["dark_matter_theory", "consciousness_studies"],
                transcends=True,
            ),
        )
    }
)


def luminosity(mass: float) -> float:
    return min(mass**LUMINOSITY_EXPONENT, LUMINOSITY_CAP)
