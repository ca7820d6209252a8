"""The cloud group: catalog assembly, allow-list, pricing, availability."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.errors import UserError
from stratos.plan.catalog import save_rows
from stratos.plan.cost import build_cloud, cloud_from_cfg

ROWS = [
    {"name": "a/us", "region": "us-east-1", "gpu": "H100", "gpu_count": 8, "price_hour": 40.0, "spot_hour": 16.0,
     "spot_availability": 0.8, "availability": 0.9},
    {"name": "b/eu", "region": "eu-central-1", "gpu": "L4", "gpu_count": 1, "price_hour": 0.8, "availability": 0.5},
    {"name": "c/eu", "region": "europe-west4", "gpu": "A100-80", "gpu_count": 1, "price_hour": 4.0, "spot_hour": 1.5,
     "spot_availability": 0.5},
]


def test_inline_rows_plus_local():
    c = build_cloud(servers=ROWS)
    assert list(c.servers.name) == ["a/us", "b/eu", "c/eu", "local"]
    np.testing.assert_allclose(c.price_hour, [40.0, 0.8, 4.0, 0.0])
    np.testing.assert_allclose(c.time_factor, 1.0)
    assert c.run_server["name"] == "local" and c.run_server["gpu"] == "cpu"
    assert list(build_cloud(servers=ROWS, include_local=False).servers.name) == ["a/us", "b/eu", "c/eu"]


def test_spot_pricing_stretches_time_and_falls_back_to_on_demand():
    c = build_cloud(servers=ROWS, pricing="spot", include_local=False)
    np.testing.assert_allclose(c.price_hour, [16.0, 0.8, 1.5])  # b has no spot market: on-demand
    np.testing.assert_allclose(c.time_factor, [1 / 0.8, 1.0, 1 / 0.5])
    np.testing.assert_allclose(c.availability, [0.8, 0.5, 0.5])


def test_region_allowlist_patterns_keep_local():
    c = build_cloud(servers=ROWS, region_allowlist=["eu-*", "europe-*"])
    assert list(c.servers.name) == ["b/eu", "c/eu", "local"]
    assert c.dropped["region_allowlist"] == 1
    with pytest.raises(UserError, match="servers.region_allowlist"):
        build_cloud(servers=ROWS, include_local=False, region_allowlist=["ap-*"])


def test_min_availability_and_bad_values():
    c = build_cloud(servers=ROWS, min_availability=0.8, include_local=False)
    assert list(c.servers.name) == ["a/us", "c/eu"] and c.dropped["min_availability"] == 1
    with pytest.raises(UserError, match="servers.pricing"):
        build_cloud(servers=ROWS, pricing="reserved")
    with pytest.raises(UserError, match="servers.min_availability"):
        build_cloud(servers=ROWS, min_availability=1.5)
    with pytest.raises(UserError, match="lists no servers"):
        build_cloud(servers=[], include_local=False, run_server="")


def test_catalog_url_and_synthetic_replace_inline_rows():
    save_rows("memory://cost/cat.csv", ROWS[:2])
    c = build_cloud(catalog="memory://cost/cat.csv", servers=ROWS, include_local=False)
    assert list(c.servers.name) == ["a/us", "b/eu"]
    s = build_cloud(synthetic_nodes=100, servers=ROWS, include_local=False)
    assert len(s) == 100 and "a/us" not in set(s.servers.name)


def test_cloud_from_composed_option(cfg_factory):
    cfg = cfg_factory(servers="catalog")
    c = cloud_from_cfg(cfg.servers)
    assert len(c) >= 40 and "local" in set(c.servers.name)
    local = cfg_factory(servers="local")
    assert list(cloud_from_cfg(local.servers).servers.name) == ["local"]
