"""Graph generators for MaxCut instances, seeded and dependency-free."""

from __future__ import annotations

import numpy as np


def random_regular_graph(num_nodes: int, degree: int, seed: int,
                         max_attempts: int = 1000) -> list[tuple[int, int]]:
    """Return the edges of a uniformly paired random `degree`-regular simple graph.

    Pairs the `num_nodes * degree` half-edges at random and starts again when a
    pairing has a self-loop or a repeated edge (the configuration model with
    rejection). Raises `ValueError` when no such graph exists or none was found
    in `max_attempts` pairings.
    """
    if num_nodes * degree % 2 or degree >= num_nodes:
        raise ValueError(f"no simple {degree}-regular graph on {num_nodes} nodes")
    rng = np.random.default_rng(seed)
    stubs = np.repeat(np.arange(num_nodes), degree)
    for _ in range(max_attempts):
        pairs = rng.permutation(stubs).reshape(-1, 2)
        pairs.sort(axis=1)
        if np.any(pairs[:, 0] == pairs[:, 1]):
            continue
        if np.unique(pairs, axis=0).shape[0] != pairs.shape[0]:
            continue
        return [(int(u), int(v)) for u, v in pairs]
    raise ValueError(f"no simple {degree}-regular graph found in {max_attempts} tries")


def girth(edges: list[tuple[int, int]], num_nodes: int) -> int:
    """Return the length of the shortest cycle, 0 for a forest (BFS from each node)."""
    neighbours: list[list[int]] = [[] for _ in range(num_nodes)]
    for u, v in edges:
        neighbours[u].append(v)
        neighbours[v].append(u)
    best = 0
    for root in range(num_nodes):
        depth = {root: 0}
        parent = {root: -1}
        queue = [root]
        for node in queue:
            for other in neighbours[node]:
                if other not in depth:
                    depth[other] = depth[node] + 1
                    parent[other] = node
                    queue.append(other)
                elif parent[node] != other:
                    cycle = depth[node] + depth[other] + 1
                    best = cycle if best == 0 else min(best, cycle)
    return best
