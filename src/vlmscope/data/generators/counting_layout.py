"""Cell choices for the counting grid world: random, clustered, scattered.

Cells are ``(row, col)`` on a ``rows x cols`` grid; each holds at most one
entity. Pure functions of their arguments and the generator passed in.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["Cell", "random_cells", "clustered_cells", "scattered_cells", "chebyshev"]

Cell = tuple[int, int]


def chebyshev(a: Cell, b: Cell) -> int:
    """King-move distance: 1 for the eight neighbours of a cell."""
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]))


def _free(rows: int, cols: int, taken: Iterable[Cell]) -> list[Cell]:
    used = set(taken)
    return [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in used]


def random_cells(k: int, rows: int, cols: int, rng: np.random.Generator, taken: Iterable[Cell] = ()) -> list[Cell]:
    """``k`` distinct free cells, uniformly."""
    free = _free(rows, cols, taken)
    if k > len(free):
        raise ValueError(f"need {k} free cells, only {len(free)} left on a {rows}x{cols} grid")
    return [free[int(i)] for i in rng.choice(len(free), k, replace=False)]


def clustered_cells(k: int, rows: int, cols: int, rng: np.random.Generator) -> list[Cell]:
    """``k`` cells grown as one compact blob of king-connected cells.

    From a random seed cell, each step adds the frontier cell nearest the
    blob's centroid (ties at random), so the blob stays round and connected.
    """
    if k == 0:
        return []
    if k > rows * cols:
        raise ValueError(f"need {k} cells, the grid has {rows * cols}")
    blob = [(int(rng.integers(rows)), int(rng.integers(cols)))]
    while len(blob) < k:
        in_blob = set(blob)
        frontier = sorted(
            {
                (r + dr, c + dc)
                for r, c in blob
                for dr in (-1, 0, 1)
                for dc in (-1, 0, 1)
                if 0 <= r + dr < rows and 0 <= c + dc < cols and (r + dr, c + dc) not in in_blob
            }
        )
        cr = sum(r for r, _ in blob) / len(blob)
        cc = sum(c for _, c in blob) / len(blob)
        d = np.array([(r - cr) ** 2 + (c - cc) ** 2 for r, c in frontier])
        best = [f for f, di in zip(frontier, d) if di <= d.min() + 1e-9]
        blob.append(best[int(rng.integers(len(best)))])
    return blob


def scattered_cells(
    k: int,
    rows: int,
    cols: int,
    rng: np.random.Generator,
    *,
    min_distance: int = 2,
    tries: int = 100,
) -> list[Cell]:
    """``k`` cells pairwise at king distance ``>= min_distance`` (no two touching by default).

    Greedy over a random order of cells, restarted up to ``tries`` times.
    """
    all_cells = [(r, c) for r in range(rows) for c in range(cols)]
    for _ in range(tries):
        out: list[Cell] = []
        for i in rng.permutation(len(all_cells)):
            cell = all_cells[int(i)]
            if all(chebyshev(cell, o) >= min_distance for o in out):
                out.append(cell)
                if len(out) == k:
                    return out
        if k == 0:
            return out
    raise ValueError(
        f"could not scatter {k} cells at distance >= {min_distance} on a {rows}x{cols} grid"
    )
