r"""Device summaries and personalised aggregation at the edge (ACME phase 2, data-distribution based).

A device never uploads examples. It uploads
  * a feature summary: q quantiles per standardised pooled-feature dimension, float16 (q, H)
    (+ quantiles of K fixed random unit projections (q, K) for the sliced distance);
  * head-unit importance (per hidden layer, normalised to sum 1 so clients weigh equally);
  * optionally its locally trained head (a few KB) and its example count.

Edge weighting. With W_ij the distance between the feature distributions of clients i and j,
$$ S_{ij} = \frac{1}{1 + W_{ij}}, \qquad A_{ij} = \frac{\exp(S_{ij}/\tau)}{\sum_k \exp(S_{ik}/\tau)} $$
(row-softmax; tau = 1 in the reference, where S in (0, 1] makes A nearly uniform, hence the knob).
W_ij = mean over dimensions of scipy's 1-D Wasserstein-1 distance between the two clients'
quantile sets (each quantile an equally weighted atom, so W1 of the quantised distributions);
"sliced" also averages in the random projections, which sees correlations marginals miss.
FedAvg weighting instead uses A_ij = n_j / sum_k n_k for every i (one global mix).

Client i receives Ĩ_i = sum_j A_ij I_j (pruning importance) and, with heads uploaded,
θ̃_i = sum_j A_ij θ_j (personalised head initialisation).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance


def quantile_levels(q: int) -> np.ndarray:
    return (np.arange(q) + 0.5) / q


def projections(dim: int, k: int, seed: int) -> np.ndarray:
    """(dim, k) random unit directions, identical on every device (shared seed)."""
    p = np.random.default_rng(seed).standard_normal((dim, k))
    return p / np.linalg.norm(p, axis=0, keepdims=True)


def feature_summary(Z: np.ndarray, q: int, proj: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Z (N, H) standardised features -> {"marginal": (q, H) f16[, "sliced": (q, K) f16]}."""
    lv = quantile_levels(q)
    out = {"marginal": np.quantile(Z, lv, axis=0).astype(np.float16)}
    if proj is not None:
        out["sliced"] = np.quantile(Z @ proj, lv, axis=0).astype(np.float16)
    return out


def summary_distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray], kind: str = "marginal") -> float:
    """Mean 1-D Wasserstein-1 over summary columns (marginal dims, plus projections when kind='sliced')."""
    keys = ["marginal"] + (["sliced"] if kind == "sliced" else [])
    cols = [(x.astype(np.float64), y.astype(np.float64)) for k in keys for x, y in zip(a[k].T, b[k].T)]
    return float(np.mean([wasserstein_distance(x, y) for x, y in cols]))


def distance_matrix(summaries: list[dict[str, np.ndarray]], kind: str = "marginal") -> np.ndarray:
    n = len(summaries)
    W = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            W[i, j] = W[j, i] = summary_distance(summaries[i], summaries[j], kind)
    return W


def similarity_weights(W: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-softmax of S / T with S = 1 / (1 + W); rows sum to 1, the diagonal is each row's largest entry."""
    S = 1.0 / (1.0 + W)
    logits = S / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    A = np.exp(logits)
    return A / A.sum(axis=1, keepdims=True)


def fedavg_weights(counts: list[int]) -> np.ndarray:
    """Every row = n_j / sum(n): the same global average for all clients."""
    c = np.asarray(counts, dtype=np.float64)
    return np.tile(c / c.sum(), (len(c), 1))


def normalise_importance(scores: list[np.ndarray]) -> list[np.ndarray]:
    return [s / max(float(s.sum()), 1e-12) for s in scores]


def mix_importance(all_scores: list[list[np.ndarray]], A: np.ndarray) -> list[list[np.ndarray]]:
    """all_scores[j][l] (h_l,) per client j, layer l -> per client i: sum_j A_ij * scores[j][l]."""
    n_layers = len(all_scores[0])
    return [[sum(A[i, j] * all_scores[j][layer] for j in range(len(all_scores))) for layer in range(n_layers)]
            for i in range(A.shape[0])]


def mix_states(states: list[dict[str, torch.Tensor]], A: np.ndarray) -> list[dict[str, torch.Tensor]]:
    """Per client i: sum_j A_ij * state_j (same head architecture everywhere)."""
    return [{k: sum(float(A[i, j]) * states[j][k] for j in range(len(states))) for k in states[0]}
            for i in range(A.shape[0])]
