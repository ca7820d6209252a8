r"""Choosing one plan from the front, and the baselines it is compared with.

Deployment score. Each objective becomes a utility in [0, 1] (1 = best on the front), from the
ideal and nadir points of the front $P$; latency, training time and cost span orders of
magnitude, so with `log_scale` they are compared in $\log_{10}$ after adding floors
$\epsilon$ = 0.001 ms, 0.0001 h and $0.01 (so a free local run still has a finite log cost):

$$ u_{\mathrm{acc}} = \frac{a - a_{\min}}{a_{\max} - a_{\min}}, \qquad
   u_k = \frac{\max_P \tilde f_k - \tilde f_k}{\max_P \tilde f_k - \min_P \tilde f_k},\quad
   \tilde f_k = \log_{10}(f_k + \epsilon_k) $$

$$ \mathrm{score} = \frac{\sum_k w_k u_k}{\sum_k w_k} $$

(an objective constant over the front gives $u = 1$). `planner.weights` sets $w$ for accuracy,
latency, train_time and cost. The chosen plan maximises the score over the front; with
`planner.selection=knee` it is pymoo's high-trade-off point instead (the largest sacrifice per
unit gain to its neighbours), or, when pymoo finds none, the point nearest the ideal point.

Baselines are lexicographic optima over the feasible set (so each lies on the front):
accuracy-first (max accuracy, then min cost, latency, time), cost-first (min cost, then max
accuracy, min latency, time) and latency-first (min latency, then max accuracy, min cost, time).
"""

from __future__ import annotations

import numpy as np

from stratos.errors import UserError, bad_value

WEIGHT_KEYS = ("accuracy", "latency", "train_time", "cost")
EPS = np.array([0.0, 1e-3, 1e-4, 0.01])  # floors for log10: ms, hours, USD
BASELINES = ("accuracy_first", "cost_first", "latency_first")


def check_weights(weights: dict[str, float]) -> np.ndarray:
    bad = sorted(set(weights) - set(WEIGHT_KEYS))
    if bad:
        raise bad_value("planner.weights", dict(weights), f"keys among {', '.join(WEIGHT_KEYS)}")
    w = np.array([float(weights.get(k, 0.0)) for k in WEIGHT_KEYS])
    if (w < 0).any() or w.sum() <= 0:
        raise UserError(f"invalid value for 'planner.weights': {dict(weights)} (allowed: weights >= 0, not all 0)")
    return w


def utilities(F: np.ndarray, ref: np.ndarray, log_scale: bool = True) -> np.ndarray:
    """(N, 4) utilities of rows F against the ideal/nadir of the reference set `ref` (the front)."""
    def tr(X):
        X = np.asarray(X, dtype=float).copy()
        if log_scale:
            X[:, 1:] = np.log10(np.maximum(X[:, 1:], 0.0) + EPS[1:])
        return X

    x, r = tr(F), tr(ref)
    lo, hi = r.min(axis=0), r.max(axis=0)
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(span > 0, (hi - x) / np.where(span > 0, span, 1.0), 1.0)
    return np.clip(u, 0.0, 1.0)  # F is minimised, so column 0 (-accuracy) works the same way


def deployment_score(F: np.ndarray, ref: np.ndarray, weights: np.ndarray, log_scale: bool = True) -> np.ndarray:
    return utilities(F, ref, log_scale) @ weights / weights.sum()


def knee(F_front: np.ndarray, log_scale: bool = True) -> int:
    """Index (into F_front) of the knee: pymoo HighTradeoffPoints on the normalised front."""
    from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

    dist = 1.0 - utilities(F_front, F_front, log_scale)  # normalised, minimised, ideal at 0
    nearest = int(np.argmin(np.linalg.norm(dist, axis=1)))
    if len(F_front) < 4:
        return nearest
    try:
        idx = HighTradeoffPoints().do(dist)
    except Exception:  # pymoo's neighbour search can fail on degenerate fronts
        idx = None
    if idx is None or len(np.atleast_1d(idx)) == 0:
        return nearest
    idx = np.atleast_1d(idx)
    return int(idx[np.argmin(np.linalg.norm(dist[idx], axis=1))])


def lexmin(keys: list[np.ndarray]) -> int:
    """Index of the lexicographic minimum over key columns (first key first; ties go on to the next key).

    Values within a relative 1e-9 of the minimum tie: two plans whose costs differ only by float rounding
    (the same hours at the same price, reached through different arithmetic) are equally cheap."""
    idx = np.arange(len(keys[0]))
    for key in keys:
        v = key[idx]
        m = v.min()
        idx = idx[v <= m + 1e-9 * max(abs(m), 1e-300)]
        if len(idx) == 1:
            break
    return int(idx[0])


def baselines(F: np.ndarray, feasible_idx: np.ndarray, prefer: np.ndarray | None = None) -> dict[str, int]:
    """Indices (into F) of the lexicographic baselines among `feasible_idx`.

    `prefer` (one value per row of F, higher first) breaks ties left after all four objectives, the way the
    chosen plan breaks them: two engine teachers under different names are the same plan, not two."""
    Ff = F[feasible_idx]
    acc, lat, hrs, cost = Ff[:, 0], Ff[:, 1], Ff[:, 2], Ff[:, 3]  # acc column is -accuracy
    last = [-np.asarray(prefer, dtype=float)[feasible_idx]] if prefer is not None else []
    orders = {
        "accuracy_first": [acc, cost, lat, hrs, *last],
        "cost_first": [cost, acc, lat, hrs, *last],
        "latency_first": [lat, acc, cost, hrs, *last],
    }
    return {k: int(feasible_idx[lexmin(keys)]) for k, keys in orders.items()}


def improvement_pct(chosen: float, base: float) -> float | None:
    """(chosen - base) / base in percent; None when the baseline scores 0."""
    return None if base <= 0 else 100.0 * (chosen - base) / base
