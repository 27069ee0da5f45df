"""Closed-form QAOA results used as independent checks of the simulator."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def maxcut_p1_edge_expectation(edges: Iterable[Sequence[int]], u: int, v: int,
                               gamma: float, beta: float) -> float:
    """Return the p = 1 QAOA probability that edge (u, v) is cut, in closed form.

    Wang, Hadfield, Jiang and Rieffel, Phys. Rev. A 97, 022304 (2018), for an
    unweighted graph with `U = exp(-i beta sum X) exp(-i gamma C_cut)`:
    `1/2 + 1/4 sin(4 beta) sin(gamma) (cos^d_u gamma + cos^d_v gamma)
    - 1/4 sin^2(2 beta) cos^(d_u + d_v - 2 t) gamma (1 - cos^t(2 gamma))`,
    with `d_u = deg(u) - 1`, `d_v = deg(v) - 1` and t the triangles on (u, v).
    The engine's gamma for the same circuit is `-gamma`, as its energy is -cut.
    """
    neighbours: dict[int, set[int]] = {}
    for a, b, *_ in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    if v not in neighbours.get(u, set()):
        raise ValueError(f"({u}, {v}) is not an edge of the graph")
    d_u, d_v = len(neighbours[u]) - 1, len(neighbours[v]) - 1
    triangles = len(neighbours[u] & neighbours[v])
    cos_g = math.cos(gamma)
    first = 0.25 * math.sin(4 * beta) * math.sin(gamma) * (cos_g ** d_u + cos_g ** d_v)
    second = 0.25 * math.sin(2 * beta) ** 2 * cos_g ** (d_u + d_v - 2 * triangles) \
        * (1 - math.cos(2 * gamma) ** triangles)
    return 0.5 + first - second
