"""The Pareto front as a PNG (matplotlib, Agg backend; written through fsspec).

Two panels share the accuracy axis: cost (left) and latency per token (right), both log
scale. Grey dots are feasible candidates (a random sample of at most 20,000), coloured dots the
front (colour = training hours, log), the star the chosen plan, and the baselines are marked
with their own symbols.
"""

from __future__ import annotations

import io

import numpy as np

from stratos.artifacts import atomic_open

MARKERS = {"accuracy_first": ("^", "tab:red"), "cost_first": ("s", "tab:green"), "latency_first": ("D", "tab:purple")}


def plot_front(url: str, F_feasible: np.ndarray, F_front: np.ndarray, chosen: np.ndarray,
               baselines: dict[str, np.ndarray], title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    rng = np.random.default_rng(0)
    bg = F_feasible if len(F_feasible) <= 20_000 else F_feasible[rng.choice(len(F_feasible), 20_000, replace=False)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    hours = np.maximum(F_front[:, 2], 1e-4)
    norm = LogNorm(vmin=hours.min(), vmax=max(hours.max(), hours.min() * 1.01))
    for ax, col, xlabel in ((axes[0], 3, "training cost (USD, log)"), (axes[1], 1, "latency per token (ms, log)")):
        floor = 0.01 if col == 3 else 1e-3  # $0 (the local machine) still shows on a log axis
        ax.scatter(np.maximum(bg[:, col], floor), -bg[:, 0], s=4, c="0.8", label="feasible", rasterized=True)
        sc = ax.scatter(np.maximum(F_front[:, col], floor), -F_front[:, 0], s=14, c=hours, cmap="viridis", norm=norm,
                        label="Pareto front")
        ax.scatter(max(chosen[col], floor), -chosen[0], s=260, marker="*", c="gold", edgecolors="k", zorder=5,
                   label="chosen")
        for name, f in baselines.items():
            m, c = MARKERS[name]
            ax.scatter(max(f[col], floor), -f[0], s=90, marker=m, facecolors="none", edgecolors=c, linewidths=2,
                       zorder=4, label=name.replace("_", "-"))
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("predicted accuracy")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.colorbar(sc, ax=axes, label="training hours")
    fig.suptitle(title or "Stratos plan: Pareto front")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    with atomic_open(url, "wb") as f:
        f.write(buf.getvalue())
    return url
