r"""Pareto fronts of minimised objective matrices F (N, M).

$a$ dominates $b$ iff $a_m \le b_m$ for all $m$ and $a_m < b_m$ for some $m$. The front is the
set of rows no row dominates; rows with identical objectives are all kept (neither dominates
the other).

* `pareto_front` - the planner's path: pymoo's `find_non_dominated` (backed by moocore's
  C implementation of `is_nondominated`, keep_weakly=True).
* `brute_force_front` - all pairs, $O(M N^2)$ in numpy blocks: the reference for tests.
* `archive_front` - Deb's "continuously updated" approach (Multi-Objective Optimization Using
  Evolutionary Algorithms, 2001, sec. 2.4.2), one candidate at a time against a running archive:
  the benchmark's reference at 473,600 candidates, where all pairs would take hours.
* `verify_front` - an $O(M N |P|)$ certificate that P is exactly the front: no member is dominated
  by any row, and every non-member is dominated by some member.
"""

from __future__ import annotations

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting, find_non_dominated


def pareto_front(F: np.ndarray) -> np.ndarray:
    """Sorted indices of the non-dominated rows of F."""
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.asarray(find_non_dominated(np.asarray(F, dtype=float)), dtype=np.int64))


def pareto_ranks(F: np.ndarray) -> np.ndarray:
    """Non-domination rank of every row (0 = front), via pymoo's NonDominatedSorting."""
    _, rank = NonDominatedSorting().do(np.asarray(F, dtype=float), return_rank=True)
    return rank


def _dominated_by_any(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """For each row of Q: is it dominated by some row of P?  (|Q|,) bool.

    Blocks of Q against all of P, one objective at a time on (block, |P|) matrices."""
    out = np.zeros(len(Q), dtype=bool)
    if len(P) == 0 or len(Q) == 0:
        return out
    block = max(1, 1_000_000 // len(P))
    for a in range(0, len(Q), block):
        q = Q[a:a + block]
        le = np.ones((len(q), len(P)), dtype=bool)
        lt = np.zeros((len(q), len(P)), dtype=bool)
        for m in range(P.shape[1]):
            pm, qm = P[None, :, m], q[:, m, None]
            le &= pm <= qm
            lt |= pm < qm
        out[a:a + block] = (le & lt).any(axis=1)
    return out


def brute_force_front(F: np.ndarray) -> np.ndarray:
    """All-pairs reference. Sorted indices."""
    F = np.asarray(F, dtype=float)
    return np.flatnonzero(~_dominated_by_any(F, F))


def archive_front(F: np.ndarray) -> np.ndarray:
    """Deb's continuously updated archive: each row is compared with the current archive only;
    it enters unless an archive member dominates it, and evicts the members it dominates."""
    F = np.asarray(F, dtype=float)
    arch = np.empty((0, F.shape[1]))
    idx: list[int] = []
    for i in range(len(F)):
        f = F[i]
        if len(idx):
            if ((arch <= f).all(axis=1) & (arch < f).any(axis=1)).any():
                continue
            beaten = (f <= arch).all(axis=1) & (f < arch).any(axis=1)
            if beaten.any():
                keep = ~beaten
                arch = arch[keep]
                idx = [j for j, k in zip(idx, keep) if k]
        arch = np.vstack([arch, f[None]])
        idx.append(i)
    return np.sort(np.array(idx, dtype=np.int64))


def verify_front(F: np.ndarray, front: np.ndarray) -> bool:
    """True iff `front` (indices) is exactly the non-dominated set of F."""
    F = np.asarray(F, dtype=float)
    P = F[front]
    mask = np.zeros(len(F), dtype=bool)
    mask[front] = True
    return (not _dominated_by_any(F, P).any()) and bool(_dominated_by_any(P, F[~mask]).all())
