"""Control tasks (Hewitt & Liang 2019): labels that carry no information about the input.

A probe that scores well on the real labels may just be expressive enough to
memorise anything; its accuracy on control labels measures that. Selectivity =
accuracy - control accuracy.

The control labels here are the real label column *permuted across samples*
by a seeded shuffle: the same class balance, the same control for every
layer, and no relation to the input. Rows that share one image (same ``image``
coordinate) share one control label, so a probe cannot score on the control
task by recognising the image across train and test. (A consistent
relabelling of the label *values* would be as learnable as the real task, so
it is not a control.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["control_labels"]


def control_labels(
    y: np.ndarray, *, n: int, seed: int, groups: Sequence[object] | None = None
) -> np.ndarray:
    """``n`` control label vectors (n, N), drawn from ``y`` (N,) by seeded permutations.

    Without ``groups`` each control is an exact permutation of ``y``. With
    ``groups`` (e.g. the image path of each row) every group takes the
    permuted label of its first row, so rows of one group agree; the class
    balance is then kept in expectation.
    """
    y = np.asarray(y)
    N = len(y)
    if groups is None:
        first = np.arange(N)
    else:
        g = np.asarray([str(v) for v in groups], dtype=object)
        if len(g) != N:
            raise ValueError(f"groups has {len(g)} entries for {N} labels")
        _, first_of_group, inverse = np.unique(g, return_index=True, return_inverse=True)
        first = first_of_group[inverse]  # (N,) index of the group's first row
    out = np.empty((n, N), dtype=y.dtype)
    for k in range(n):
        rng = np.random.default_rng([seed, k, 0xC0])
        perm = y[rng.permutation(N)]
        out[k] = perm[first]
    return out
