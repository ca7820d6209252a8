"""Catalog rows: loading from YAML / JSON / CSV through fsspec, validation, specs, network RTT."""

from __future__ import annotations

import json

import fsspec
import numpy as np
import pytest
import yaml

from stratos.errors import UserError
from stratos.plan.catalog import GPU_SPECS, REGIONS, load_rows, local_machine, rtt_ms, save_rows, table_from_rows
from stratos.config import conf_files

ROWS = [
    {"name": "aws/g5.xlarge/us-east-1", "region": "us-east-1", "gpu": "A10G", "gpu_count": 1, "price_hour": 1.006,
     "spot_hour": 0.42},
    {"name": "acme/custom/eu-west-1", "region": "eu-west-1", "gpu": "X9000", "gpu_count": 2, "price_hour": 3.0,
     "gpu_mem_gb": 64, "tflops": 500, "mem_bw_gbs": 2500, "interconnect": "pcie"},
    {"name": "edge/box", "region": "nowhere", "gpu": "L4", "gpu_count": 1, "price_hour": 0.5, "rtt_ms": 7.5},
]


def test_rtt_model_matches_light_in_fibre():
    assert rtt_ms(REGIONS["us-east-1"], REGIONS["us-east-1"]) == pytest.approx(2.0)
    # Virginia -> Ireland ~5,450 km great circle: 2 + 2 * 1.5 * 5450 / 200 ~ 84 ms (observed pings: 70-80 ms)
    assert 75 < rtt_ms(REGIONS["us-east-1"], REGIONS["eu-west-1"]) < 95
    assert rtt_ms(REGIONS["us-east-1"], REGIONS["ap-northeast-1"]) > rtt_ms(REGIONS["us-east-1"], REGIONS["us-west-2"])


def test_table_fills_specs_and_rtt():
    t = table_from_rows(ROWS, "us-east")
    assert len(t) == 3 and list(t.name) == [r["name"] for r in ROWS]
    assert t.gpu_mem_gb[0] == GPU_SPECS["A10G"]["gpu_mem_gb"] and t.tflops[0] == GPU_SPECS["A10G"]["tflops"]
    assert t.tflops[1] == 500 and t.interconnect[1] == "pcie" and t.gpu_count[1] == 2
    assert t.rtt_ms[2] == 7.5  # explicit value wins over an unknown region
    assert t.rtt_ms[0] < 5 and t.rtt_ms[1] > 60
    assert np.isnan(t.spot_hour[1]) and t.spot_hour[0] == 0.42
    assert t.provider[0] == "aws" and t.row(1)["spot_hour"] is None


@pytest.mark.parametrize("ext", ["yaml", "json", "csv", "csv.gz"])
@pytest.mark.parametrize("base", ["memory://catalogs", "local"])
def test_roundtrip_through_fsspec(ext, base, tmp_path):
    root = str(tmp_path) if base == "local" else base
    url = f"{root}/servers.{ext}"
    if ext == "csv.gz":  # written by hand: compression is inferred on read
        src = f"{root}/plain.csv"
        save_rows(src, ROWS)
        with fsspec.open(src, "rb") as f, fsspec.open(url, "wb", compression="gzip") as g:
            g.write(f.read())
    else:
        save_rows(url, ROWS)
    rows = load_rows(url)
    a, b = table_from_rows(ROWS, "us-east"), table_from_rows(rows, "us-east")
    for col in ("name", "gpu", "region", "interconnect"):
        assert list(getattr(a, col)) == list(getattr(b, col))
    for col in ("gpu_count", "price_hour", "tflops", "mem_bw_gbs", "gpu_mem_gb", "rtt_ms"):
        np.testing.assert_allclose(getattr(a, col), getattr(b, col))
    np.testing.assert_array_equal(np.isnan(a.spot_hour), np.isnan(b.spot_hour))


def test_yaml_list_and_json_mapping_forms():
    with fsspec.open("memory://forms/list.yml", "w") as f:
        yaml.safe_dump(ROWS[:1], f)
    with fsspec.open("memory://forms/map.json", "w") as f:
        json.dump({"servers": ROWS[:2], "comment": "extra keys are ignored"}, f)
    assert [r["name"] for r in load_rows("memory://forms/list.yml")] == [ROWS[0]["name"]]
    assert len(load_rows("memory://forms/map.json")) == 2


@pytest.mark.parametrize("bad,needle", [
    ({"gpu": "Z1"}, "unknown gpu 'Z1'"),
    ({"price_hour": None}, "missing 'price_hour'"),
    ({"price_hour": "cheap"}, "invalid value for 'price_hour'"),
    ({"region": "mars-1"}, "unknown region 'mars-1'"),
    ({"gpu_count": 0}, "gpu_count"),
    ({"name": ""}, "missing 'name'"),
])
def test_bad_rows_name_the_field(bad, needle):
    row = {**ROWS[0], **bad}
    with pytest.raises(UserError, match=needle.replace("(", r"\(")) as e:
        table_from_rows([row], "us-east")
    assert "\n" not in str(e.value)


def test_duplicate_names_and_bad_user_region_and_bad_files():
    with pytest.raises(UserError, match="duplicate name"):
        table_from_rows([ROWS[0], ROWS[0]], "us-east")
    with pytest.raises(UserError, match="servers.user_region"):
        table_from_rows(ROWS, "atlantis")
    with pytest.raises(UserError, match="file not found"):
        load_rows("memory://nope/servers.yaml")
    with pytest.raises(UserError, match=r"\.yaml/\.yml/\.json/\.csv"):
        load_rows("memory://nope/servers.parquet")
    with fsspec.open("memory://bad/x.yaml", "w") as f:
        f.write("just a string")
    with pytest.raises(UserError, match="expected a list of server rows"):
        load_rows("memory://bad/x.yaml")


def test_bundled_catalog_is_valid_and_realistic():
    raw = yaml.safe_load((conf_files() / "servers" / "catalog.yaml").read_text())
    t = table_from_rows(raw["servers"] + [local_machine()], "us-east")
    assert len(t) >= 40 and len(set(t.provider)) >= 6 and len(set(t.region)) >= 10
    gpu = ~t.is_cpu
    per_gpu_hour = t.price_hour[gpu] / t.gpu_count[gpu]
    assert (per_gpu_hour > 0.1).all() and (per_gpu_hour < 15).all()  # sane list prices per accelerator-hour
    has_spot = ~np.isnan(t.spot_hour)
    assert (t.spot_hour[has_spot] < t.price_hour[has_spot]).all()
    assert set(t.gpu[gpu]) <= set(GPU_SPECS)
    # the local machine: CPU, free, zero RTT
    i = t.index("local")
    assert t.is_cpu[i] and t.price_hour[i] == 0 and t.rtt_ms[i] == 0 and t.gpu_mem_gb[i] > 1
