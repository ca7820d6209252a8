"""Synthetic catalogs for scale tests."""

from __future__ import annotations

import numpy as np

from stratos.plan.catalog import table_from_rows
from stratos.plan.synthetic import synthetic_rows


def test_synthetic_catalog_size_determinism_and_validity():
    a, b = synthetic_rows(3700, seed=1), synthetic_rows(3700, seed=1)
    assert a == b and synthetic_rows(50, seed=2) != synthetic_rows(50, seed=1)
    t = table_from_rows(a, "eu-west")
    assert len(t) == 3700 and len(set(t.name)) == 3700
    assert len(set(t.gpu)) >= 15 and len(set(t.provider)) == 6
    spot = ~np.isnan(t.spot_hour)
    assert 0.6 < spot.mean() < 0.8 and (t.spot_hour[spot] < t.price_hour[spot]).all()
    per_gpu = t.price_hour / t.gpu_count
    h100 = t.gpu == "H100"
    t4 = t.gpu == "T4"
    assert np.median(per_gpu[h100]) > 3 * np.median(per_gpu[t4])  # prices follow the accelerator
    assert (t.gpu_count[t.gpu == "GH200"] == 1).all()
