"""Production rates and life: vectorised over a garden's bodies.

Inputs are the garden's body columns (kind codes, masses, positions, life
stages, populations) as numpy arrays; nothing here knows where they live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs
import numpy as np

from cosmic.game import rules

STAR = rules.KINDS["star"].code
PLANET = rules.KINDS["planet"].code
_DUST_PER_KIND = np.zeros(len(rules.KIND_BY_CODE))
for _k in rules.KINDS.values():
    _DUST_PER_KIND[_k.code] = _k.dust_per_second

_STAGE_ORGANIC = np.array([s.organic for s in rules.LIFE_STAGES])
_STAGE_BIOMASS = np.array([s.biomass for s in rules.LIFE_STAGES])
_STAGE_THOUGHT = np.array([s.thought_per_million for s in rules.LIFE_STAGES]) / 1e6
_STAGE_CAPACITY = np.array([s.capacity for s in rules.LIFE_STAGES])
_STAGE_GROWTH = np.array([s.growth for s in rules.LIFE_STAGES])
_STAGE_ADVANCE_POP = np.array([s.advance_population for s in rules.LIFE_STAGES])
_STAGE_ADVANCE_SECONDS = np.array([s.advance_seconds for s in rules.LIFE_STAGES])
_LAST_STAGE = len(rules.LIFE_STAGES) - 1


def multipliers(upgrades: Mapping[str, int], research: Iterable[str]) -> dict[str, float]:
    """Production multiplier per resource from upgrade levels and finished research."""
    result = {
        name: rules.UPGRADES[name].multiplier(upgrades.get(name, 0)) for name in rules.RESOURCES
    }
    for name in research:
        for resource, factor in rules.RESEARCH[name].production.items():
            result[resource] *= factor
    return result


def life_growth(research: Iterable[str]) -> float:
    factor = 1.0
    for name in research:
        factor *= rules.RESEARCH[name].life_growth
    return factor


def zone_width(research: Iterable[str]) -> float:
    factor = 1.0
    for name in research:
        factor *= rules.RESEARCH[name].zone_width
    return factor


def rates(
    kind: np.ndarray,
    mass: np.ndarray,
    stage: np.ndarray,
    population: np.ndarray,
    mult: Mapping[str, float],
) -> dict[str, float]:
    """Resources per second of play (dark matter comes from accretion, not a rate)."""
    dust = rules.BASE_DUST_PER_SECOND + float(_DUST_PER_KIND[kind].sum())
    stars = kind == STAR
    energy = float(np.minimum(mass[stars] ** rules.LUMINOSITY_EXPONENT, rules.LUMINOSITY_CAP).sum())
    planets = kind == PLANET
    st = stage[planets]
    organic = float(_STAGE_ORGANIC[st].sum())
    biomass = float(_STAGE_BIOMASS[st].sum())
    thought = float((_STAGE_THOUGHT[st] * population[planets]).sum())
    raw = {
        "cosmic_dust": dust,
        "energy": energy,
        "organic_matter": organic,
        "biomass": biomass,
        "dark_matter": 0.0,
        "thought_points": thought,
    }
    return {name: raw[name] * mult[name] for name in rules.RESOURCES}


def stellar_flux(kind: np.ndarray, mass: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Flux at every body from every star, in Earth units (L☉ / AU²)."""
    stars = np.flatnonzero(kind == STAR)
    flux = np.zeros(kind.shape[0])
    if stars.size == 0 or kind.size == 0:
        return flux
    lum = np.minimum(mass[stars] ** rules.LUMINOSITY_EXPONENT, rules.LUMINOSITY_CAP)
    d2 = ((pos[:, None, :] - pos[None, stars, :]) ** 2).sum(axis=2)
    d2[stars, np.arange(stars.size)] = np.inf  # a star does not heat itself
    return (lum[None, :] / np.maximum(d2, 1e-12)).sum(axis=1)


def habitable(kind: np.ndarray, flux: np.ndarray, width: float = 1.0) -> np.ndarray:
    low, high = rules.HABITABLE_FLUX
    return (kind == PLANET) & (flux >= low / width) & (flux <= high * width)


@attrs.frozen
class LifeChange:
    index: int
    old: int
    new: int
    reason: str  # "evolved" | "extinct" | "stalled" | "resumed" (old == new)


def advance_life(
    kind: np.ndarray,
    in_zone: np.ndarray,
    stage: np.ndarray,
    population: np.ndarray,
    stage_time: np.ndarray,
    outside_time: np.ndarray,
    dt: float,
    growth: float = 1.0,
) -> list[LifeChange]:
    """Advance every planet's life by ``dt`` seconds, in place; return stage changes.

    In the zone: lifeless planets start microbial life after a delay, living
    ones grow logistically and advance when both population and time in the
    stage reach the thresholds.  Out of it: life stalls, and dies after
    LIFE_STALL_SECONDS.  Stalling and resuming are reported once each, when
    they start, not every tick.
    """
    changes: list[LifeChange] = []
    planets = kind == PLANET
    inside = planets & in_zone
    outside = planets & ~in_zone
    alive = stage > 0

    for i in np.flatnonzero(inside & alive & (outside_time > 0.0)):
        changes.append(LifeChange(int(i), int(stage[i]), int(stage[i]), "resumed"))
    outside_time[inside] = 0.0
    leaving = outside & alive & (outside_time == 0.0) & (dt > 0.0)
    outside_time[outside & alive] += dt
    stage_time[outside & ~alive] = 0.0
    dies = outside & alive & (outside_time >= rules.LIFE_STALL_SECONDS)
    for i in np.flatnonzero(leaving & ~dies):
        changes.append(LifeChange(int(i), int(stage[i]), int(stage[i]), "stalled"))
    dying = np.flatnonzero(dies)
    for i in dying:
        changes.append(LifeChange(int(i), int(stage[i]), 0, "extinct"))
    stage[dying] = 0
    population[dying] = 0.0
    stage_time[dying] = 0.0
    outside_time[dying] = 0.0

    growing = np.flatnonzero(inside)
    if growing.size == 0:
        return changes
    stage_time[growing] += dt
    living = growing[stage[growing] > 0]
    if living.size:
        cap = _STAGE_CAPACITY[stage[living]]
        rate = _STAGE_GROWTH[stage[living]] * growth
        p0 = np.maximum(population[living], 1.0)
        # The logistic curve in closed form stays exact for any dt.
        population[living] = cap / (1.0 + (cap / p0 - 1.0) * np.exp(-rate * dt))
    ready = growing[
        (stage[growing] < _LAST_STAGE)
        & (population[growing] >= _STAGE_ADVANCE_POP[stage[growing]])
        & (stage_time[growing] >= _STAGE_ADVANCE_SECONDS[stage[growing]])
    ]
    for i in ready:
        changes.append(LifeChange(int(i), int(stage[i]), int(stage[i]) + 1, "evolved"))
    born = ready[stage[ready] == 0]
    population[born] = rules.INITIAL_POPULATION
    stage[ready] += 1
    stage_time[ready] = 0.0
    return changes
