"""Seeded randomness, balanced label sequences and stratified splits.

Every random choice in a generator comes from a ``numpy.random.Generator``
derived from ``(seed, stream name)`` here, so results never depend on time,
``PYTHONHASHSEED`` or call order across independent concerns: changing the
test fraction re-draws the split without moving a single shape.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["rng_stream", "balanced_cycle", "balanced_pairs", "stratified_split"]

T = TypeVar("T")


def rng_stream(seed: int, stream: str) -> np.random.Generator:
    """An independent generator for one purpose (``"spatial/scenes"``, ``"split"``, ...)."""
    return np.random.default_rng([int(seed), zlib.crc32(stream.encode("utf-8"))])


def balanced_cycle(values: Sequence[T], n: int, rng: np.random.Generator) -> list[T]:
    """``n`` draws from ``values``, each value used ``floor(n/k)`` or ``ceil(n/k)`` times.

    Values are dealt in shuffled rounds of ``k = len(values)`` and the result is
    shuffled again, so the order carries no information.
    """
    k = len(values)
    if k == 0:
        raise ValueError("balanced_cycle needs at least one value")
    rounds = -(-n // k)
    idx = np.concatenate([rng.permutation(k) for _ in range(rounds)])[:n]
    rng.shuffle(idx)
    return [values[i] for i in idx]


def balanced_pairs(n: int, k_a: int, k_b: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` index pairs ``(a, b)``, ``a < k_a``, ``b < k_b``, balanced jointly and per axis.

    Within each block of ``k_a * k_b`` draws every pair occurs exactly once;
    any prefix of a block keeps both marginals within one of uniform. The
    sequence ``(j mod k_a, (j + q) mod k_b)`` for ``i = q * lcm + j`` visits all
    pairs once per block (each shift ``q`` covers one residue class mod
    ``gcd(k_a, k_b)``). Labels are relabelled at random per block and the final
    order is shuffled.
    """
    if k_a <= 0 or k_b <= 0:
        raise ValueError("balanced_pairs needs non-empty axes")
    block = k_a * k_b
    lcm = math.lcm(k_a, k_b)
    out: list[tuple[int, int]] = []
    perm_a = perm_b = np.arange(0)
    for i in range(n):
        pos = i % block
        if pos == 0:
            perm_a, perm_b = rng.permutation(k_a), rng.permutation(k_b)
        q, j = divmod(pos, lcm)
        out.append((int(perm_a[j % k_a]), int(perm_b[(j + q) % k_b])))
    order = rng.permutation(n)
    return [out[i] for i in order]


def stratified_split(
    strata: Sequence[Hashable],
    *,
    test_fraction: float,
    rng: np.random.Generator,
    test_name: str = "test",
) -> list[str]:
    """``train``/``test`` per item, ``round(n * test_fraction)`` tests spread over strata.

    Each stratum gets ``floor(m * f)`` test items; the leftover quota goes to
    the strata with the largest remainders (ties broken at random), so the
    total is exact and every stratum is within one of proportional.
    """
    n = len(strata)
    labels = ["train"] * n
    if n == 0 or test_fraction <= 0:
        return labels
    groups: dict[Hashable, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    keys = sorted(groups, key=repr)
    quotas = [len(groups[k]) * test_fraction for k in keys]
    take = [math.floor(q) for q in quotas]
    left = int(math.floor(n * test_fraction + 0.5)) - sum(take)
    tiebreak = rng.random(len(keys))
    by_remainder = sorted(range(len(keys)), key=lambda j: (-(quotas[j] - take[j]), tiebreak[j]))
    for j in by_remainder[: max(left, 0)]:
        take[j] += 1
    for key, t in zip(keys, take):
        members = np.array(groups[key])
        rng.shuffle(members)
        for i in members[:t]:
            labels[int(i)] = test_name
    return labels
