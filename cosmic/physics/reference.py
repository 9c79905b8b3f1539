"""numpy reference for the compiled kernels: same signatures, same results.

It is the "traditional" baseline the benchmark compares against, the oracle
the tests compare the compiled kernels with, and the fallback when the
compiled module is missing.  Every segment is a softened direct sum written
with numpy broadcasting (rows in blocks, so a 10,000-body garden needs tens of
megabytes of temporaries, not gigabytes).  There is no tree here: every
``step_*`` name is the same direct sum.

Results agree with the compiled kernels to rounding: the compiled code is
built with ``-ffast-math`` (reassociated, vectorised sums, FMA contraction),
so the sums run in another order.  The bound the tests hold is, per
acceleration component, ``|a_compiled - a_reference| <= 1e-12 * sum_j |G m_j
d_ij / r_ij^3|`` (see docs/performance.rst for why).
"""

from __future__ import annotations

import numpy as np

from cosmic.physics.kernels import TINY

# Rows per broadcasting block: a block is BLOCK x n pairs of temporaries.
_BLOCK_PAIRS = 1 << 18


def accelerations(x: np.ndarray, m: np.ndarray, eps2: float, g_const: float) -> np.ndarray:
    """Accelerations of bodies at ``x`` (shape (3, n)), shape (3, n)."""
    n = x.shape[1]
    acc = np.empty_like(x)
    rows = max(1, _BLOCK_PAIRS // max(n, 1))
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        d = x[:, None, :] - x[:, lo:hi, None]  # (3, rows, n): x_j - x_i
        r2 = np.maximum(np.einsum("kij,kij->ij", d, d) + eps2, TINY)
        w = m / (r2 * np.sqrt(r2))  # the self term has d == 0 and adds nothing
        acc[:, lo:hi] = np.einsum("kij,ij->ki", d, w)
    return g_const * acc


def overlaps(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, of local indices whose spheres overlap, shape (k, 2)."""
    n = x.shape[1]
    found = []
    rows = max(1, _BLOCK_PAIRS // max(n, 1))
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        d = x[:, None, :] - x[:, lo:hi, None]
        d2 = np.einsum("kij,kij->ij", d, d)
        reach = r[lo:hi, None] + r[None, :]
        hit = d2 < reach * reach
        i, j = np.nonzero(hit)
        i = i + lo
        keep = j > i
        found.append(np.stack([i[keep], j[keep]], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.concatenate(found).astype(np.int64)


def step(
    pos,
    vel,
    acc,
    mass,
    radius,
    starts,
    counts,
    fresh,
    origins,
    limits,
    dt,
    eps2,
    g_const,
    theta,
    leaf,
):
    """Reference of ``kernels.step_*``: kick-drift-kick, then overlaps and escapes.

    Same arguments and results as the compiled ``step_direct`` (``theta`` and
    ``leaf`` are accepted and ignored: every garden is a direct sum here).
    """
    pairs = []
    gone = []
    evals = 0
    for g, (s, n) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        if n == 0:
            continue
        sl = slice(s, s + n)
        m = mass[sl]
        if fresh[g]:
            acc[:, sl] = accelerations(pos[:, sl], m, eps2, g_const)
            evals += n * (n - 1) // 2
        vel[:, sl] += (0.5 * dt) * acc[:, sl]
        pos[:, sl] += dt * vel[:, sl]
        off = pos[:, sl] - origins[g][:, None]
        out = np.einsum("ki,ki->i", off, off) > limits[g] * limits[g]
        gone.append(np.flatnonzero(out) + s)
        acc[:, sl] = accelerations(pos[:, sl], m, eps2, g_const)
        evals += n * (n - 1) // 2
        vel[:, sl] += (0.5 * dt) * acc[:, sl]
        pairs.append(overlaps(pos[:, sl], radius[sl]) + s)
    flat = np.concatenate(pairs).ravel() if pairs else np.empty(0, dtype=np.int64)
    escaped = np.concatenate(gone) if gone else np.empty(0, dtype=np.int64)
    return flat.astype(np.int64), escaped.astype(np.int64), evals


# ------------------------------------------------------------ diagnostics
def total_energy(pos, vel, mass, eps2: float, g_const: float) -> float:
    """Kinetic plus (softened) potential energy of one garden's bodies.

    ``pos`` and ``vel`` have shape (3, n).  The potential uses the same
    softening as the force, so the leapfrog conserves exactly this quantity.
    """
    kinetic = 0.5 * float(np.sum(mass * np.einsum("ki,ki->i", vel, vel)))
    n = pos.shape[1]
    potential = 0.0
    for i in range(n - 1):
        d = pos[:, i + 1 :] - pos[:, i : i + 1]
        r = np.sqrt(np.einsum("kj,kj->j", d, d) + eps2)
        potential -= g_const * mass[i] * float(np.sum(mass[i + 1 :] / r))
    return kinetic + potential


def merged(m1, x1, v1, r1, m2, x2, v2, r2):
    """The body two colliding bodies become: ``(mass, position, velocity, radius)``.

    Mass and momentum are conserved: the position is the centre of mass, the
    velocity the total momentum over the total mass, and the radius keeps the
    total volume (``r = cbrt(r1^3 + r2^3)``).
    """
    m = m1 + m2
    x = (m1 * np.asarray(x1, dtype=np.float64) + m2 * np.asarray(x2, dtype=np.float64)) / m
    v = (m1 * np.asarray(v1, dtype=np.float64) + m2 * np.asarray(v2, dtype=np.float64)) / m
    r = float(np.cbrt(r1**3 + r2**3))
    return float(m), x, v, r


# The compiled module has one export per force kernel; the reference has one.
step_scalar = step_direct = step_full = step_tree = step
