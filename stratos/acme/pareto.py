r"""Pareto front of (width, depth) sub-networks per device class, and the choice of one.

Accuracy surrogate. Measuring every sub-network's accuracy is what the surrogate saves: a degree-k
polynomial in (w, d) is fitted by least squares on `n_measured` points chosen by greedy maximin
distance from the full model (a space-filling design), and scored on the held-out rest:
$$ \hat a(w, d) = \sum_{i + j \le k} c_{ij} w^i d^j . $$

Front. Per device class, candidates violating size / latency / energy limits are dropped
(pymoo's convention: constraint G <= 0); the exact front of the rest minimises
F = (-\hat a, latency, energy) via pymoo's NonDominatedSorting (|grid| is tiny: no search needed).

Selection. rule=accuracy: the most accurate (predicted) front point, i.e. "the biggest accuracy that
fits" (ties -> smaller); rule=tradeoff: the best predicted trade-off score on the front.

Trade-off score (measured accuracy, sizes normalised by the class's largest candidate):
$$ S = a - \lambda \left( \frac{size}{size_{max}} + \frac{energy}{energy_{max}} \right), \quad \lambda = 0.5 . $$
Baselines: highest-accuracy (ignores limits), largest-size (biggest feasible), random (mean over feasible).
"""

from __future__ import annotations

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from stratos.acme.profile import SubnetCost, device_energy_mj, device_latency_ms
from stratos.errors import UserError


# ------------------------------------------------------------------ surrogate
def poly_features(X: np.ndarray, degree: int) -> np.ndarray:
    """(n, 2) -> (n, (k+1)(k+2)/2) monomials w^i d^j, i + j <= k."""
    w, d = X[:, 0], X[:, 1]
    return np.stack([w**i * d**j for i in range(degree + 1) for j in range(degree + 1 - i)], axis=1)


def fit_surrogate(X: np.ndarray, y: np.ndarray, degree: int = 2) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(poly_features(X, degree), y, rcond=None)
    return coef


def predict_surrogate(coef: np.ndarray, X: np.ndarray, degree: int = 2) -> np.ndarray:
    return poly_features(X, degree) @ coef


def design_points(X: np.ndarray, n: int) -> np.ndarray:
    """Greedy maximin: start at the largest sub-network, then repeatedly the point farthest from those chosen."""
    chosen = [int(np.argmax(X[:, 0] * X[:, 1]))]
    while len(chosen) < n:
        dist = np.min(np.linalg.norm(X[:, None, :] - X[None, chosen, :], axis=-1), axis=1)
        dist[chosen] = -1.0
        chosen.append(int(np.argmax(dist)))
    return np.array(chosen)


def surrogate_fit_report(X: np.ndarray, acc: np.ndarray, n_measured: int, degree: int) -> dict:
    """Fit on the design points, predict all; errors on the held-out points. acc: measured accuracy (n,)."""
    fit_idx = design_points(X, n_measured)
    held = np.setdiff1d(np.arange(len(X)), fit_idx)
    coef = fit_surrogate(X[fit_idx], acc[fit_idx], degree)
    pred = predict_surrogate(coef, X, degree)
    err = np.abs(pred[held] - acc[held]) if len(held) else np.zeros(0)
    return {"coef": coef.tolist(), "fit_idx": fit_idx.tolist(), "held_idx": held.tolist(), "pred": pred.tolist(),
            "held_mae": float(err.mean()) if len(err) else 0.0, "held_max_err": float(err.max()) if len(err) else 0.0,
            "fit_mae": float(np.abs(pred[fit_idx] - acc[fit_idx]).mean())}


# ------------------------------------------------------------------ front + selection
def front(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of F (n, m), all objectives minimised."""
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=int)


def tradeoff_score(acc, size, energy, size_max: float, energy_max: float, weight: float = 0.5):
    return np.asarray(acc) - weight * (np.asarray(size) / size_max + np.asarray(energy) / energy_max)


def select_for_device(costs: list[SubnetCost], acc_pred: np.ndarray, acc_true: np.ndarray, device, rule: str,
                      weight: float = 0.5) -> dict:
    """Choose a sub-network for one device class; also score the baselines. Returns a JSON-able dict."""
    size = np.array([c.size_mb for c in costs])
    lat = np.array([device_latency_ms(c, device) for c in costs])
    energy = np.array([device_energy_mj(c, device) for c in costs])
    G = np.stack([size - device.max_size_mb, lat - device.max_latency_ms, energy - device.max_energy_mj], axis=1)
    feasible = np.flatnonzero((G <= 0).all(axis=1))
    if len(feasible) == 0:
        i = int(np.argmin(size))
        raise UserError(f"invalid value for 'device_classes[{device.name}]': no sub-network fits "
                        f"max_size_mb={device.max_size_mb}, max_latency_ms={device.max_latency_ms}, "
                        f"max_energy_mj={device.max_energy_mj} (smallest: {size[i]:.3f} MB, {lat[i]:.2f} ms, "
                        f"{energy[i]:.3f} mJ)")
    F = np.stack([-acc_pred, lat, energy], axis=1)[feasible]
    on_front = feasible[front(F)]
    score_pred = tradeoff_score(acc_pred, size, energy, size.max(), energy.max(), weight)
    score_true = tradeoff_score(acc_true, size, energy, size.max(), energy.max(), weight)
    if rule == "accuracy":
        # rounded so that float noise in equal predictions does not beat the size tie-break
        chosen = int(on_front[np.lexsort((size[on_front], -np.round(acc_pred[on_front], 9)))[0]])
    else:
        chosen = int(on_front[np.argmax(score_pred[on_front])])
    highest = int(np.argmax(acc_true))
    largest = int(feasible[np.lexsort((-acc_pred[feasible], -size[feasible]))[0]])

    def point(i: int) -> dict:
        return {"index": i, "width": costs[i].width, "depth": costs[i].depth, "size_mb": float(size[i]),
                "latency_ms": float(lat[i]), "energy_mj": float(energy[i]), "acc_pred": float(acc_pred[i]),
                "acc": float(acc_true[i]), "score": float(score_true[i]), "feasible": bool(i in feasible)}

    return {
        "device": device.name, "rule": rule, "chosen": point(chosen),
        "front": [point(int(i)) for i in on_front], "n_feasible": int(len(feasible)),
        "baselines": {"highest_accuracy": point(highest), "largest_size": point(largest),
                      "random": {"score": float(score_true[feasible].mean()), "acc": float(acc_true[feasible].mean()),
                                 "size_mb": float(size[feasible].mean()), "energy_mj": float(energy[feasible].mean())}},
    }
