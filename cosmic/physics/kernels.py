# ruff: noqa: E501  (the "#pythran export" signatures must stay on one line)
"""N-body kernels, compiled by Pythran into ``cosmic.physics._kernels``.

This file is plain Python as well: it imports uncompiled (slowly), but the
engine uses either the compiled module or the numpy reference
(``reference.py``), never this file directly.  setup.py builds it into
``_kernels`` (one thread) and, with ``COSMIC_BUILD_OPENMP=1``, into
``_kernels_omp`` (``-fopenmp``: the ``#omp`` comments below become OpenMP
pragmas; without OpenMP they are ignored).

Layout: every garden is a segment ``[start, start + count)`` of the shared
structure-of-arrays buffers ``pos``/``vel``/``acc`` (shape ``(3, capacity)``),
``mass`` and ``radius``.  One call steps every listed segment.  Each segment
is copied into contiguous scratch arrays, stepped there and copied back: the
copies are O(n) against the O(n^2) force sum, and they let gcc vectorise the
pair loop (AVX2 + FMA, four pairs per instruction).

Force on body i: ``G * sum_j m_j (x_j - x_i) / max(|x_j - x_i|^2 + eps2, TINY)^1.5``.
The floor TINY makes a pair at zero separation with zero softening (and the
self term of the non-symmetric loops) contribute exactly zero instead of NaN.

Force kernels: ``_forces_scalar`` (plain pair loop), ``_forces_direct``
(vectorised symmetric direct sum), ``_forces_full`` (non-symmetric, OpenMP
over bodies), ``_forces_tree`` (Barnes-Hut octree, group walks, OpenMP over
groups); one ``step_*`` export each.  Collisions are overlapping spheres at
the end-of-step positions (unsoftened distance < r_i + r_j); escapes are
bodies farther than ``limits[g]`` from the garden origin after the drift.
The compiled functions release the GIL for their whole run (Pythran wraps
every export in ``PyEval_SaveThread``/``PyEval_RestoreThread``).
"""

import numpy as np

# Smallest squared distance used in a force: see the module docstring.
TINY = 1e-150
# Octree nodes stop splitting at this depth (coincident bodies share a leaf).
MAX_DEPTH = 48


def _forces_scalar(x, y, z, m, r, fx, fy, fz, n, eps2, theta, leaf, base, hits):
    """Textbook pair loop, one pair at a time: the path for small gardens."""
    for i in range(n):
        fx[i] = 0.0
        fy[i] = 0.0
        fz[i] = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            dx = x[j] - x[i]
            dy = y[j] - y[i]
            dz = z[j] - z[i]
            d2 = dx * dx + dy * dy + dz * dz
            r2 = max(d2 + eps2, TINY)
            inv = 1.0 / (r2 * np.sqrt(r2))
            fx[i] += m[j] * inv * dx
            fy[i] += m[j] * inv * dy
            fz[i] += m[j] * inv * dz
            fx[j] -= m[i] * inv * dx
            fy[j] -= m[i] * inv * dy
            fz[j] -= m[i] * inv * dz
            rr = r[i] + r[j]
            if base >= 0 and d2 < rr * rr:
                hits.append(base + i)
                hits.append(base + j)
    return n * (n - 1) // 2


def _forces_direct(x, y, z, m, r, fx, fy, fz, n, eps2, theta, leaf, base, hits):
    """Symmetric direct sum: each pair once, both bodies updated.

    The inner loop is written so that gcc vectorises it: per-i accumulators,
    contiguous loads, the j-side update as a plain array store.  Overlaps are
    only counted in the vector loop; the rare row with a hit is rescanned.
    """
    for i in range(n):
        fx[i] = 0.0
        fy[i] = 0.0
        fz[i] = 0.0
    for i in range(n):
        xi = x[i]
        yi = y[i]
        zi = z[i]
        mi = m[i]
        ri = r[i]
        sx = 0.0
        sy = 0.0
        sz = 0.0
        nhit = 0.0
        for j in range(i + 1, n):
            dx = x[j] - xi
            dy = y[j] - yi
            dz = z[j] - zi
            d2 = dx * dx + dy * dy + dz * dz
            rr = ri + r[j]
            nhit += 1.0 if d2 < rr * rr else 0.0
            r2 = max(d2 + eps2, TINY)
            inv = 1.0 / (r2 * np.sqrt(r2))
            wj = m[j] * inv
            wi = mi * inv
            sx += wj * dx
            sy += wj * dy
            sz += wj * dz
            fx[j] -= wi * dx
            fy[j] -= wi * dy
            fz[j] -= wi * dz
        fx[i] += sx
        fy[i] += sy
        fz[i] += sz
        if nhit > 0.0 and base >= 0:
            _rescan(x, y, z, r, i, i + 1, n, base, hits)
    return n * (n - 1) // 2


def _rescan(x, y, z, r, i, j0, n, base, hits):
    """Append every j in [j0, n) overlapping body i (local indices)."""
    for j in range(j0, n):
        dx = x[j] - x[i]
        dy = y[j] - y[i]
        dz = z[j] - z[i]
        rr = r[i] + r[j]
        if dx * dx + dy * dy + dz * dz < rr * rr:
            hits.append(base + i)
            hits.append(base + j)


def _forces_full(x, y, z, m, r, fx, fy, fz, n, eps2, theta, leaf, base, hits):
    """Non-symmetric direct sum, parallel over bodies in the OpenMP build.

    Twice the pair evaluations of ``_forces_direct``, but no shared writes,
    so threads need no reduction.  Worth it only with three or more cores.
    """
    nh = np.zeros(n)
    # omp parallel for schedule(static)
    for i in range(n):
        xi = x[i]
        yi = y[i]
        zi = z[i]
        ri = r[i]
        sx = 0.0
        sy = 0.0
        sz = 0.0
        nhit = 0.0
        for j in range(n):
            dx = x[j] - xi
            dy = y[j] - yi
            dz = z[j] - zi
            d2 = dx * dx + dy * dy + dz * dz
            rr = ri + r[j]
            nhit += 1.0 if d2 < rr * rr else 0.0
            r2 = max(d2 + eps2, TINY)
            inv = 1.0 / (r2 * np.sqrt(r2))
            w = m[j] * inv
            sx += w * dx
            sy += w * dy
            sz += w * dz
        fx[i] = sx
        fy[i] = sy
        fz[i] = sz
        # The self term counts as an overlap when the radius is positive.
        nh[i] = nhit - (1.0 if ri > 0.0 else 0.0)
    if base >= 0:
        for i in range(n):
            if nh[i] > 0.0:
                _rescan(x, y, z, r, i, i + 1, n, base, hits)
    return n * (n - 1)


# ---------------------------------------------------------------- Barnes-Hut
# Node table: integer columns (start, count, first child, child count, depth)
# into the permutation ``perm``; float columns below.  Children of a node are
# contiguous, created breadth first, so a reverse sweep visits children first.
_CX = 0  # geometric centre and half size of the cube
_CY = 1
_CZ = 2
_H = 3
_M = 4  # mass and centre of mass
_MX = 5
_MY = 6
_MZ = 7
_LOX = 8  # bounding box of the bodies inside
_LOY = 9
_LOZ = 10
_HIX = 11
_HIY = 12
_HIZ = 13
_RMAX = 14  # largest body radius inside
_RCRIT = 15  # opening distance: side / theta + |com - centre|
_NF = 16


def _build_tree(x, y, z, m, r, n, leaf, theta):
    """Octree over bodies 0..n-1: returns (node ints, node floats, count, perm).

    The ``int()``/``float()`` around values copied between arrays are not
    noise: without them Pythran's type inference feeds the arrays' types back
    into each other round the loop and gcc needs minutes and gigabytes.
    """
    cap = 64 + 16 * (n // leaf + 1)
    ni = np.zeros((cap, 5), dtype=np.int64)
    nf = np.empty((cap, _NF))
    perm = np.empty(n, dtype=np.int64)
    for i in range(n):
        perm[i] = i
    tmp = np.empty(n, dtype=np.int64)
    octant = np.empty(n, dtype=np.int64)
    _root(x, y, z, n, ni, nf)
    # The octant count is a run-time value on purpose: with a literal 8
    # Pythran unrolls the octant loops, which costs more compile time again.
    n8 = 8 + 0 * n
    counts8 = np.zeros(n8, dtype=np.int64)
    offs8 = np.zeros(n8, dtype=np.int64)
    nnodes = 1
    k = 0
    while k < nnodes:
        start = int(ni[k, 0])
        cnt = int(ni[k, 1])
        # A full table or MAX_DEPTH leaves a node bigger than ``leaf``: still
        # exact inside (its bodies interact directly), only slower.
        if cnt > leaf and ni[k, 4] < MAX_DEPTH and nnodes + 8 <= cap:
            # Sort the node's bodies by octant, then append the non-empty children.
            cx = float(nf[k, _CX])
            cy = float(nf[k, _CY])
            cz = float(nf[k, _CZ])
            for o in range(n8):
                counts8[o] = 0
            for q in range(start, start + cnt):
                b = perm[q]
                o = int(x[b] > cx) + 2 * int(y[b] > cy) + 4 * int(z[b] > cz)
                octant[q] = int(o)
                counts8[o] += 1
            first = int(start)
            for o in range(n8):
                offs8[o] = int(first)
                first += int(counts8[o])
            for q in range(start, start + cnt):
                o = octant[q]
                tmp[offs8[o]] = int(perm[q])
                offs8[o] += 1
            for q in range(start, start + cnt):
                perm[q] = int(tmp[q])
            h2 = 0.5 * float(nf[k, _H])
            ni[k, 2] = int(nnodes)
            first = int(start)
            for o in range(n8):
                if counts8[o] > 0:
                    ni[nnodes, 0] = int(first)
                    ni[nnodes, 1] = int(counts8[o])
                    ni[nnodes, 2] = 0
                    ni[nnodes, 3] = 0
                    ni[nnodes, 4] = int(ni[k, 4]) + 1
                    nf[nnodes, _CX] = cx + h2 * (2.0 * (o % 2) - 1.0)
                    nf[nnodes, _CY] = cy + h2 * (2.0 * ((o // 2) % 2) - 1.0)
                    nf[nnodes, _CZ] = cz + h2 * (2.0 * (o // 4) - 1.0)
                    nf[nnodes, _H] = h2
                    nnodes += 1
                first += int(counts8[o])
            ni[k, 3] = int(nnodes) - int(ni[k, 2])
        k += 1
    for nd in range(nnodes - 1, -1, -1):
        if ni[nd, 3] == 0:
            _leaf_moments(nd, ni, nf, perm, x, y, z, m, r)
        else:
            _node_moments(nd, ni, nf)
        _finish_node(nd, nf, theta)
    return ni, nf, nnodes, perm


def _root(x, y, z, n, ni, nf):
    """Node 0: the cube around every body."""
    lox = x[0]
    hix = x[0]
    loy = y[0]
    hiy = y[0]
    loz = z[0]
    hiz = z[0]
    for i in range(1, n):
        lox = min(lox, x[i])
        hix = max(hix, x[i])
        loy = min(loy, y[i])
        hiy = max(hiy, y[i])
        loz = min(loz, z[i])
        hiz = max(hiz, z[i])
    half = 0.5 * max(hix - lox, max(hiy - loy, hiz - loz))
    ni[0, 0] = 0
    ni[0, 1] = n
    ni[0, 4] = 0
    nf[0, _CX] = 0.5 * (lox + hix)
    nf[0, _CY] = 0.5 * (loy + hiy)
    nf[0, _CZ] = 0.5 * (loz + hiz)
    nf[0, _H] = half * (1.0 + 1e-12) + 1e-300


def _leaf_moments(nd, ni, nf, perm, x, y, z, m, r):
    b = perm[ni[nd, 0]]
    mm = 0.0
    mx = 0.0
    my = 0.0
    mz = 0.0
    rmax = 0.0
    lx = x[b]
    ly = y[b]
    lz = z[b]
    hx = x[b]
    hy = y[b]
    hz = z[b]
    for q in range(ni[nd, 0], ni[nd, 0] + ni[nd, 1]):
        b = perm[q]
        mm += m[b]
        mx += m[b] * x[b]
        my += m[b] * y[b]
        mz += m[b] * z[b]
        rmax = max(rmax, r[b])
        lx = min(lx, x[b])
        ly = min(ly, y[b])
        lz = min(lz, z[b])
        hx = max(hx, x[b])
        hy = max(hy, y[b])
        hz = max(hz, z[b])
    nf[nd, _M] = mm
    nf[nd, _MX] = mx / mm
    nf[nd, _MY] = my / mm
    nf[nd, _MZ] = mz / mm
    nf[nd, _RMAX] = rmax
    nf[nd, _LOX] = lx
    nf[nd, _LOY] = ly
    nf[nd, _LOZ] = lz
    nf[nd, _HIX] = hx
    nf[nd, _HIY] = hy
    nf[nd, _HIZ] = hz


def _node_moments(nd, ni, nf):
    c0 = ni[nd, 2]
    mm = 0.0
    mx = 0.0
    my = 0.0
    mz = 0.0
    rmax = 0.0
    lx = nf[c0, _LOX]
    ly = nf[c0, _LOY]
    lz = nf[c0, _LOZ]
    hx = nf[c0, _HIX]
    hy = nf[c0, _HIY]
    hz = nf[c0, _HIZ]
    for c in range(c0, c0 + ni[nd, 3]):
        mm += nf[c, _M]
        mx += nf[c, _M] * nf[c, _MX]
        my += nf[c, _M] * nf[c, _MY]
        mz += nf[c, _M] * nf[c, _MZ]
        rmax = max(rmax, nf[c, _RMAX])
        lx = min(lx, nf[c, _LOX])
        ly = min(ly, nf[c, _LOY])
        lz = min(lz, nf[c, _LOZ])
        hx = max(hx, nf[c, _HIX])
        hy = max(hy, nf[c, _HIY])
        hz = max(hz, nf[c, _HIZ])
    nf[nd, _M] = mm
    nf[nd, _MX] = mx / mm
    nf[nd, _MY] = my / mm
    nf[nd, _MZ] = mz / mm
    nf[nd, _RMAX] = rmax
    nf[nd, _LOX] = lx
    nf[nd, _LOY] = ly
    nf[nd, _LOZ] = lz
    nf[nd, _HIX] = hx
    nf[nd, _HIY] = hy
    nf[nd, _HIZ] = hz


def _finish_node(nd, nf, theta):
    """Opening distance: cube side / theta plus the centre-of-mass offset."""
    ddx = nf[nd, _MX] - nf[nd, _CX]
    ddy = nf[nd, _MY] - nf[nd, _CY]
    ddz = nf[nd, _MZ] - nf[nd, _CZ]
    nf[nd, _RCRIT] = 2.0 * nf[nd, _H] / theta + np.sqrt(ddx * ddx + ddy * ddy + ddz * ddz)


def _gap2(nf, a, b):
    """Squared gap between the body bounding boxes of nodes a and b (0 if they touch)."""
    gx = max(max(nf[a, _LOX] - nf[b, _HIX], nf[b, _LOX] - nf[a, _HIX]), 0.0)
    gy = max(max(nf[a, _LOY] - nf[b, _HIY], nf[b, _LOY] - nf[a, _HIY]), 0.0)
    gz = max(max(nf[a, _LOZ] - nf[b, _HIZ], nf[b, _LOZ] - nf[a, _HIZ]), 0.0)
    return gx * gx + gy * gy + gz * gz


def _group_forces(g, ni, nf, nnodes, perm, x, y, z, m, r, fx, fy, fz, nh, eps2):
    """Forces on the bodies of leaf g from one tree walk shared by the group.

    A cell is used as a point mass when the centre of mass is farther from the
    group's bounding box than its opening distance and no sphere inside it can
    touch a sphere of the group; otherwise it is opened (a leaf adds its
    bodies).  Then each group body sums the two interaction lists in
    vectorisable loops.  Returns the number of force evaluations.
    """
    cm = np.empty(nnodes)
    cxs = np.empty(nnodes)
    cys = np.empty(nnodes)
    czs = np.empty(nnodes)
    nbmax = x.shape[0]
    bm = np.empty(nbmax)
    bxs = np.empty(nbmax)
    bys = np.empty(nbmax)
    bzs = np.empty(nbmax)
    brs = np.empty(nbmax)
    stack = np.empty(nnodes + 8, dtype=np.int64)
    ncell = 0
    nbody = 0
    glx = nf[g, _LOX]
    gly = nf[g, _LOY]
    glz = nf[g, _LOZ]
    ghx = nf[g, _HIX]
    ghy = nf[g, _HIY]
    ghz = nf[g, _HIZ]
    grmax = nf[g, _RMAX]
    sp = 1
    stack[0] = 0
    while sp > 0:
        sp -= 1
        c = stack[sp]
        accept = False
        if c != g:
            px = nf[c, _MX]
            py = nf[c, _MY]
            pz = nf[c, _MZ]
            ex = max(max(glx - px, px - ghx), 0.0)
            ey = max(max(gly - py, py - ghy), 0.0)
            ez = max(max(glz - pz, pz - ghz), 0.0)
            rc = nf[c, _RCRIT]
            if ex * ex + ey * ey + ez * ez > rc * rc:
                touch = nf[c, _RMAX] + grmax
                accept = _gap2(nf, c, g) > touch * touch
        if accept:
            cm[ncell] = nf[c, _M]
            cxs[ncell] = nf[c, _MX]
            cys[ncell] = nf[c, _MY]
            czs[ncell] = nf[c, _MZ]
            ncell += 1
        elif ni[c, 3] == 0:
            for q in range(ni[c, 0], ni[c, 0] + ni[c, 1]):
                b = perm[q]
                bm[nbody] = m[b]
                bxs[nbody] = x[b]
                bys[nbody] = y[b]
                bzs[nbody] = z[b]
                brs[nbody] = r[b]
                nbody += 1
        else:
            for k in range(ni[c, 2], ni[c, 2] + ni[c, 3]):
                stack[sp] = k
                sp += 1
    for q in range(ni[g, 0], ni[g, 0] + ni[g, 1]):
        i = perm[q]
        xi = x[i]
        yi = y[i]
        zi = z[i]
        ri = r[i]
        sx = 0.0
        sy = 0.0
        sz = 0.0
        for j in range(ncell):
            dx = cxs[j] - xi
            dy = cys[j] - yi
            dz = czs[j] - zi
            r2 = max(dx * dx + dy * dy + dz * dz + eps2, TINY)
            w = cm[j] / (r2 * np.sqrt(r2))
            sx += w * dx
            sy += w * dy
            sz += w * dz
        nhit = 0.0
        for j in range(nbody):
            dx = bxs[j] - xi
            dy = bys[j] - yi
            dz = bzs[j] - zi
            d2 = dx * dx + dy * dy + dz * dz
            rr = ri + brs[j]
            nhit += 1.0 if d2 < rr * rr else 0.0
            r2 = max(d2 + eps2, TINY)
            w = bm[j] / (r2 * np.sqrt(r2))
            sx += w * dx
            sy += w * dy
            sz += w * dz
        fx[i] = sx
        fy[i] = sy
        fz[i] = sz
        nh[i] = nhit - (1.0 if ri > 0.0 else 0.0)
    return ni[g, 1] * (ncell + nbody)


def _forces_tree(x, y, z, m, r, fx, fy, fz, n, eps2, theta, leaf, base, hits):
    """Barnes-Hut forces on bodies 0..n-1 (monopole cells, group walks)."""
    if n <= leaf:
        return _forces_direct(x, y, z, m, r, fx, fy, fz, n, eps2, theta, leaf, base, hits)
    ni, nf, nnodes, perm = _build_tree(x, y, z, m, r, n, leaf, theta)
    nleaf = 0
    for k in range(nnodes):
        if ni[k, 3] == 0:
            nleaf += 1
    leaves = np.empty(nleaf, dtype=np.int64)
    nleaf = 0
    for k in range(nnodes):
        if ni[k, 3] == 0:
            leaves[nleaf] = k
            nleaf += 1
    nh = np.zeros(n)
    evals = np.zeros(nleaf, dtype=np.int64)
    # omp parallel for schedule(dynamic)
    for k in range(nleaf):
        evals[k] = _group_forces(
            leaves[k], ni, nf, nnodes, perm, x, y, z, m, r, fx, fy, fz, nh, eps2
        )
    if base >= 0:
        # Overlaps are rare: find the partners of the flagged bodies by brute force.
        for i in range(n):
            if nh[i] > 0.0:
                _rescan(x, y, z, r, i, i + 1, n, base, hits)
    return np.sum(evals)


# ------------------------------------------------------------------- driver
def _to_array(values):
    out = np.empty(len(values), dtype=np.int64)
    for k in range(len(values)):
        out[k] = values[k]
    return out


def _step(
    forces,
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
    """Kick-drift-kick of every listed segment with one force kernel; see ``step_direct``."""
    hits = [0]
    hits.pop()
    gone = [0]
    gone.pop()
    nmax = 0
    for g in range(starts.shape[0]):
        nmax = max(nmax, counts[g])
    x = np.empty(nmax)
    y = np.empty(nmax)
    z = np.empty(nmax)
    vx = np.empty(nmax)
    vy = np.empty(nmax)
    vz = np.empty(nmax)
    fx = np.empty(nmax)
    fy = np.empty(nmax)
    fz = np.empty(nmax)
    m = np.empty(nmax)
    r = np.empty(nmax)
    half = 0.5 * dt
    evals = 0
    for g in range(starts.shape[0]):
        s = starts[g]
        n = counts[g]
        if n == 0:
            continue
        for k in range(n):
            x[k] = pos[0, s + k]
            y[k] = pos[1, s + k]
            z[k] = pos[2, s + k]
            vx[k] = vel[0, s + k]
            vy[k] = vel[1, s + k]
            vz[k] = vel[2, s + k]
            fx[k] = acc[0, s + k]
            fy[k] = acc[1, s + k]
            fz[k] = acc[2, s + k]
            m[k] = mass[s + k]
            r[k] = radius[s + k]
        ox = origins[g, 0]
        oy = origins[g, 1]
        oz = origins[g, 2]
        lim2 = limits[g] * limits[g]
        # Phase 0 (only when the stored accelerations are stale) computes the
        # accelerations at the current positions; phase 1 is kick, drift, the
        # escape check and the accelerations at the new positions.  One call
        # site for the force kernel keeps the compiled code small.
        for phase in range(0 if fresh[g] != 0 else 1, 2):
            if phase == 1:
                for k in range(n):
                    vx[k] += half * fx[k]
                    vy[k] += half * fy[k]
                    vz[k] += half * fz[k]
                    x[k] += dt * vx[k]
                    y[k] += dt * vy[k]
                    z[k] += dt * vz[k]
                for k in range(n):
                    ex = x[k] - ox
                    ey = y[k] - oy
                    ez = z[k] - oz
                    if ex * ex + ey * ey + ez * ez > lim2:
                        gone.append(s + k)
            evals += forces(
                x, y, z, m, r, fx, fy, fz, n, eps2, theta, leaf, s if phase == 1 else -1, hits
            )
            for k in range(n):
                fx[k] *= g_const
                fy[k] *= g_const
                fz[k] *= g_const
        for k in range(n):
            vx[k] += half * fx[k]
            vy[k] += half * fy[k]
            vz[k] += half * fz[k]
            pos[0, s + k] = x[k]
            pos[1, s + k] = y[k]
            pos[2, s + k] = z[k]
            vel[0, s + k] = vx[k]
            vel[1, s + k] = vy[k]
            vel[2, s + k] = vz[k]
            acc[0, s + k] = fx[k]
            acc[1, s + k] = fy[k]
            acc[2, s + k] = fz[k]
    return _to_array(hits), _to_array(gone), evals


# One export per force kernel (a single export dispatching on a ``kind``
# argument would inline every kernel into one function: gcc then needs more
# than 8 GB to compile it).  All four take the same arguments:
#
#   pos, vel, acc    float64 (3, capacity), updated in place
#   mass, radius     float64 (capacity,)
#   starts, counts   int64 (segments,): garden g is [starts[g], starts[g] + counts[g])
#   fresh            int64 (segments,): non-zero = acc of that garden is stale
#   origins, limits  float64 (segments, 3) and (segments,): escape sphere
#   dt, eps2, g_const, theta  float64; leaf int (tree only: theta, leaf)
#
# and return ``(pairs, escaped, evaluations)``: buffer indices of overlapping
# bodies at the new positions, flattened ``[i0, j0, i1, j1, ...]`` with
# ``i < j``; buffer indices of bodies beyond their garden's escape distance;
# and the number of pair force evaluations done.


# pythran export step_scalar(float64[:,:], float64[:,:], float64[:,:], float64[:], float64[:], int64[:], int64[:], int64[:], float64[:,:], float64[:], float64, float64, float64, float64, int)
def step_scalar(
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
    """One leapfrog step with the plain pair loop (small gardens)."""
    return _step(
        _forces_scalar,
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
    )


# pythran export step_direct(float64[:,:], float64[:,:], float64[:,:], float64[:], float64[:], int64[:], int64[:], int64[:], float64[:,:], float64[:], float64, float64, float64, float64, int)
def step_direct(
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
    """One leapfrog step with the vectorised symmetric direct sum."""
    return _step(
        _forces_direct,
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
    )


# pythran export step_full(float64[:,:], float64[:,:], float64[:,:], float64[:], float64[:], int64[:], int64[:], int64[:], float64[:,:], float64[:], float64, float64, float64, float64, int)
def step_full(
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
    """One leapfrog step with the non-symmetric direct sum (OpenMP over bodies)."""
    return _step(
        _forces_full,
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
    )


# pythran export step_tree(float64[:,:], float64[:,:], float64[:,:], float64[:], float64[:], int64[:], int64[:], int64[:], float64[:,:], float64[:], float64, float64, float64, float64, int)
def step_tree(
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
    """One leapfrog step with the Barnes-Hut tree (OpenMP over leaf groups)."""
    return _step(
        _forces_tree,
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
    )
