"""The front PNG."""

from __future__ import annotations

import fsspec
import numpy as np

from stratos.plan.plot import plot_front


def test_png_written_through_fsspec():
    rng = np.random.default_rng(0)
    F = np.stack([-rng.uniform(0.2, 0.9, 500), 10 ** rng.uniform(-1, 2, 500), 10 ** rng.uniform(-2, 1, 500),
                  np.r_[0.0, 10 ** rng.uniform(-2, 2, 499)]], axis=1)
    front = F[:20]
    url = plot_front("memory://plots/pareto.png", F, front, front[0], {"accuracy_first": front[1],
                                                                       "cost_first": front[2], "latency_first": front[3]})
    with fsspec.open(url, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
