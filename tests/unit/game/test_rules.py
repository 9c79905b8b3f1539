"""The rules table and the production / life functions built on it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosmic.game import economy, rules

K = rules.KINDS
STAR, PLANET, ASTEROID, COMET = (K[n].code for n in ("star", "planet", "asteroid", "comet"))


def arrays(*kinds: str, masses=None, stages=None, populations=None):
    kind = np.array([K[k].code for k in kinds], dtype=np.int8)
    mass = np.array(masses if masses is not None else [K[k].mass for k in kinds], dtype=float)
    stage = np.array(stages if stages is not None else [0] * len(kinds), dtype=np.int8)
    population = np.array(populations if populations is not None else [0.0] * len(kinds))
    return kind, mass, stage, population


NO_BONUS = economy.multipliers({}, [])


def test_creation_costs_and_caps_match_the_game_rules() -> None:
    expected = {
        "asteroid": ({"cosmic_dust": 100}, 1000),
        "comet": ({"cosmic_dust": 500}, 1000),
        "moon": ({"cosmic_dust": 1000}, 500),
        "dwarf_planet": ({"cosmic_dust": 2500}, 100),
        "planet": ({"cosmic_dust": 10000}, 200),
        "gas_giant": ({"cosmic_dust": 25000, "energy": 1000}, 100),
        "star": ({"cosmic_dust": 1000, "energy": 500}, 50),
        "black_hole": ({"energy": 5000, "dark_matter": 100}, 10),
    }
    assert {name: (dict(k.cost), k.cap) for name, k in K.items()} == expected
    assert K["star"].requires == "stellar_formation"
    assert K["black_hole"].requires == "gravitational_engineering"
    assert rules.MAX_BODIES == 10_000
    assert sorted(k.code for k in K.values()) == list(range(len(K)))


def test_base_dust_and_small_bodies() -> None:
    assert economy.rates(*arrays(), NO_BONUS)["cosmic_dust"] == 1.0
    rates = economy.rates(*arrays("asteroid", "asteroid", "comet", "planet"), NO_BONUS)
    assert rates["cosmic_dust"] == 1.0 + 3 * 0.5


def test_star_energy_is_luminosity_capped() -> None:
    rates = economy.rates(*arrays("star", "star", masses=[1.0, 2.0]), NO_BONUS)
    assert rates["energy"] == pytest.approx(1.0 + 2.0**3.5)
    huge = economy.rates(*arrays("star", masses=[1000.0]), NO_BONUS)
    assert huge["energy"] == rules.LUMINOSITY_CAP


@pytest.mark.parametrize(
    ("stage", "organic", "biomass", "thought"),
    [(1, 0.0, 0.0, 0.0), (2, 0.5, 0.1, 0.0), (3, 0.8, 0.3, 0.0), (4, 1.0, 0.5, 0.1 * 3.0)],
)
def test_life_production(stage: int, organic: float, biomass: float, thought: float) -> None:
    rates = economy.rates(*arrays("planet", stages=[stage], populations=[3e6]), NO_BONUS)
    assert rates["organic_matter"] == pytest.approx(organic)
    assert rates["biomass"] == pytest.approx(biomass)
    assert rates["thought_points"] == pytest.approx(thought)


def test_upgrades_compound_and_cost_grows_geometrically() -> None:
    bonuses = {
        "cosmic_dust": 0.5,
        "energy": 0.3,
        "organic_matter": 0.2,
        "biomass": 0.15,
        "dark_matter": 0.1,
        "thought_points": 0.05,
    }
    for name, bonus in bonuses.items():
        upgrade = rules.UPGRADES[name]
        assert upgrade.bonus == bonus
        assert 1.5 <= upgrade.growth <= 3.0
        assert upgrade.multiplier(3) == pytest.approx((1 + bonus) ** 3)
        assert upgrade.cost(4) / upgrade.cost(3) == pytest.approx(upgrade.growth)
    mult = economy.multipliers({"cosmic_dust": 2}, [])
    assert economy.rates(*arrays(), mult)["cosmic_dust"] == pytest.approx(2.25)


def test_research_tree() -> None:
    assert len(rules.RESEARCH) == 9
    for research in rules.RESEARCH.values():
        assert set(research.requires) <= set(rules.RESEARCH), research.name
        assert research.seconds > 0
    final = rules.RESEARCH["dimensional_physics"]
    assert dict(final.cost) == {"dark_matter": 10000, "thought_points": 50000}
    assert final.transcends
    mult = economy.multipliers({}, ["orbital_mechanics"])
    assert mult["cosmic_dust"] == pytest.approx(1.25)
    # every node is reachable: requirements form no cycle
    order: list[str] = []
    while len(order) < len(rules.RESEARCH):
        ready = [
            r.name
            for r in rules.RESEARCH.values()
            if r.name not in order and set(r.requires) <= set(order)
        ]
        assert ready, "the research tree has a cycle"
        order += ready


def flux_at(distance: float, star_mass: float = 1.0) -> float:
    kind, mass, _, _ = arrays("star", "planet", masses=[star_mass, K["planet"].mass])
    pos = np.array([[0.0, 0.0, 0.0], [distance, 0.0, 0.0]])
    return float(economy.stellar_flux(kind, mass, pos)[1])


@pytest.mark.parametrize(
    ("distance", "inside"), [(0.9, False), (1.0, True), (1.3, True), (1.4, False), (3.0, False)]
)
def test_habitable_zone_band_around_a_sun(distance: float, inside: bool) -> None:
    flux = np.array([flux_at(distance)])
    assert bool(economy.habitable(np.array([PLANET]), flux)[0]) is inside


def test_zone_scales_with_luminosity_and_research_widens_it() -> None:
    # a 2 M☉ star is 2^3.5 as luminous: the zone moves out by its square root
    far = 1.0 * math.sqrt(2.0**3.5)
    assert economy.habitable(np.array([PLANET]), np.array([flux_at(far, 2.0)]))[0]
    edge = np.array([flux_at(1.45)])
    assert not economy.habitable(np.array([PLANET]), edge)[0]
    assert economy.habitable(np.array([PLANET]), edge, width=1.2)[0]
    assert not economy.habitable(np.array([ASTEROID]), np.array([1.0]))[0]


class Life:
    def __init__(self, n: int = 1, kind: int = PLANET) -> None:
        self.kind = np.full(n, kind, dtype=np.int8)
        self.stage = np.zeros(n, dtype=np.int8)
        self.population = np.zeros(n)
        self.stage_time = np.zeros(n)
        self.outside = np.zeros(n)

    def run(self, zone: bool, seconds: float, dt: float = 1.0, growth: float = 1.0):
        changes = []
        for _ in range(round(seconds / dt)):
            changes += economy.advance_life(
                self.kind,
                np.full(self.kind.shape, zone),
                self.stage,
                self.population,
                self.stage_time,
                self.outside,
                dt,
                growth,
            )
        return changes


def test_life_starts_after_a_delay_in_the_zone() -> None:
    life = Life()
    assert life.run(True, 59.0) == []
    (change,) = life.run(True, 1.0)
    assert (change.old, change.new, change.reason) == (0, 1, "evolved")
    assert life.population[0] == rules.INITIAL_POPULATION


def test_life_advances_through_every_stage() -> None:
    life = Life()
    stages = [c.new for c in life.run(True, 4 * 3600.0, dt=10.0)]
    assert stages == [1, 2, 3, 4]
    assert life.population[0] > rules.LIFE_BY_NAME["animal"].advance_population


def test_advance_needs_both_population_and_time() -> None:
    life = Life()
    life.stage[0], life.population[0] = 1, 1e6  # plenty of microbes, no time yet
    assert life.run(True, 100.0) == []
    assert [c.new for c in life.run(True, 20.0)] == [2]


def test_growth_is_logistic_and_research_speeds_it() -> None:
    slow, fast = Life(), Life()
    for life in (slow, fast):
        life.stage[0], life.population[0] = 1, 1e3
    slow.run(True, 50.0)
    fast.run(True, 50.0, growth=1.5)
    assert fast.population[0] > slow.population[0] > 1e3
    assert slow.population[0] < rules.LIFE_BY_NAME["microbial"].capacity
    one_step = Life()
    one_step.stage[0], one_step.population[0] = 1, 1e3
    one_step.run(True, 50.0, dt=50.0)
    assert one_step.population[0] == pytest.approx(slow.population[0], rel=1e-9)


def test_outside_the_zone_life_stalls_then_dies() -> None:
    life = Life()
    life.stage[0], life.population[0] = 2, 5e6
    # The stall is told once, when it starts, not every second of it.
    (stalled,) = life.run(False, 119.0)
    assert (stalled.old, stalled.new, stalled.reason) == (2, 2, "stalled")
    assert life.population[0] == 5e6 and life.stage[0] == 2
    (change,) = life.run(False, 1.0)
    assert (change.old, change.new, change.reason) == (2, 0, "extinct")
    assert life.population[0] == 0.0
    assert life.run(False, 10.0) == []  # nothing left to stall


def test_dying_in_one_long_tick_is_told_once_as_extinction() -> None:
    life = Life()
    life.stage[0], life.population[0] = 3, 6e7
    (change,) = life.run(False, 600.0, dt=600.0)
    assert (change.old, change.new, change.reason) == (3, 0, "extinct")


def test_returning_to_the_zone_resets_the_stall() -> None:
    life = Life()
    life.stage[0], life.population[0] = 1, 1e4
    assert [c.reason for c in life.run(False, 100.0)] == ["stalled"]
    (resumed,) = life.run(True, 1.0)
    assert (resumed.old, resumed.new, resumed.reason) == (1, 1, "resumed")
    assert [c.reason for c in life.run(False, 100.0)] == ["stalled"]
    assert life.stage[0] == 1


def test_lifeless_planets_and_zero_time_never_stall() -> None:
    life = Life(n=2)
    life.stage[1], life.population[1] = 2, 5e6
    args = (life.kind, np.zeros(2, bool), life.stage, life.population, life.stage_time)
    assert economy.advance_life(*args, life.outside, 0.0) == []  # no time passed yet
    assert [(c.index, c.reason) for c in life.run(False, 5.0)] == [(1, "stalled")]


def test_only_planets_live() -> None:
    life = Life(kind=ASTEROID)
    assert life.run(True, 600.0) == []
    assert life.stage[0] == 0
