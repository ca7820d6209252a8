"""Server catalog: what can run a Stratos job, what it costs, how far it is from the user.

A catalog is a list of rows (one per server type and region), read from the cloud option's
inline `servers` (conf/servers/catalog.yaml) or from any fsspec URL holding YAML, JSON or CSV.
Row fields (only the first five are required when `gpu` is in `GPU_SPECS`):

  name           str    unique, e.g. "aws/p5.48xlarge/us-east-1"
  gpu            str    accelerator model ("H100", "A10G", "cpu", ...): key into GPU_SPECS
  gpu_count      int    accelerators per node
  price_hour     float  on-demand USD per node-hour
  region         str    provider region ("us-east-1", "europe-west4", ...): key into REGIONS
  provider       str    default: the part of `name` before the first "/"
  spot_hour      float  spot / preemptible USD per node-hour (empty: no spot market)
  availability   float  chance capacity is there when asked (0..1), default 1
  spot_availability  float  share of spot time not lost to preemption (0..1), default 0.8
  gpu_mem_gb, tflops, mem_bw_gbs, interconnect, mfu   override the GPU_SPECS entry (per accelerator:
                 memory GB, dense bf16 TFLOP/s, memory bandwidth GB/s, nvlink|xgmi|pcie|none, MFU prior)
  rtt_ms         float  network round trip to the user; default from the region's coordinates
  lat, lon       float  coordinates for a region not in REGIONS
  launcher       str    how a run gets there: local (this machine, in-process) | slurm (a partition, through
                 submitit) | cloud (SkyPilot); default: local for `local`, else cloud
  partition      str    launcher slurm: the partition name
  startup_s      float  wall time before training starts there (queueing, process start, provisioning),
                 counted in the plan's training time and cost; default 0

Everything becomes one `ServerTable` of numpy columns, so the planner's estimators broadcast
over servers without Python loops.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, fields
from typing import Any

import fsspec
import numpy as np
import yaml

from stratos.errors import UserError

# Datasheet figures per accelerator: memory (GB), dense bf16 tensor TFLOP/s (fp16 where the part has
# no bf16: T4, V100), memory bandwidth (GB/s), intra-node link, and the training-MFU prior (share of
# peak a Lightning/HF bf16 run achieves before any calibration; older / consumer parts reach less).
GPU_SPECS: dict[str, dict[str, Any]] = {
    "T4": dict(gpu_mem_gb=16, tflops=65, mem_bw_gbs=320, interconnect="pcie", mfu=0.30),
    "V100": dict(gpu_mem_gb=16, tflops=125, mem_bw_gbs=900, interconnect="nvlink", mfu=0.30),
    "L4": dict(gpu_mem_gb=24, tflops=121, mem_bw_gbs=300, interconnect="pcie", mfu=0.35),
    "A10G": dict(gpu_mem_gb=24, tflops=70, mem_bw_gbs=600, interconnect="pcie", mfu=0.35),
    "A10": dict(gpu_mem_gb=24, tflops=125, mem_bw_gbs=600, interconnect="pcie", mfu=0.35),
    "RTX4090": dict(gpu_mem_gb=24, tflops=165, mem_bw_gbs=1008, interconnect="pcie", mfu=0.35),
    "RTXA6000": dict(gpu_mem_gb=48, tflops=155, mem_bw_gbs=768, interconnect="pcie", mfu=0.35),
    "L40S": dict(gpu_mem_gb=48, tflops=362, mem_bw_gbs=864, interconnect="pcie", mfu=0.35),
    "A100-40": dict(gpu_mem_gb=40, tflops=312, mem_bw_gbs=1555, interconnect="nvlink", mfu=0.40),
    "A100-80": dict(gpu_mem_gb=80, tflops=312, mem_bw_gbs=2039, interconnect="nvlink", mfu=0.40),
    "A100-80-PCIe": dict(gpu_mem_gb=80, tflops=312, mem_bw_gbs=1935, interconnect="pcie", mfu=0.40),
    "H100": dict(gpu_mem_gb=80, tflops=989, mem_bw_gbs=3350, interconnect="nvlink", mfu=0.40),
    "H100-PCIe": dict(gpu_mem_gb=80, tflops=756, mem_bw_gbs=2000, interconnect="pcie", mfu=0.40),
    "H100-NVL": dict(gpu_mem_gb=94, tflops=835, mem_bw_gbs=3900, interconnect="pcie", mfu=0.40),
    "GH200": dict(gpu_mem_gb=96, tflops=989, mem_bw_gbs=4000, interconnect="none", mfu=0.40),
    "H200": dict(gpu_mem_gb=141, tflops=989, mem_bw_gbs=4800, interconnect="nvlink", mfu=0.40),
    "MI300X": dict(gpu_mem_gb=192, tflops=1307, mem_bw_gbs=5300, interconnect="xgmi", mfu=0.30),
    "B200": dict(gpu_mem_gb=180, tflops=2250, mem_bw_gbs=8000, interconnect="nvlink", mfu=0.40),
    # A CPU node: memory is RAM, TFLOP/s is fp32 matmul, and it trains in fp32.
    "cpu": dict(gpu_mem_gb=16, tflops=0.1, mem_bw_gbs=10, interconnect="none", mfu=0.40),
}

# Region coordinates (lat, lon) for the network model. Provider region names and the generic
# names users give as `servers.user_region` share the table.
REGIONS: dict[str, tuple[float, float]] = {
    # generic user regions
    "us-east": (38.9, -77.4), "us-central": (41.3, -95.9), "us-west": (45.6, -121.2), "us-south": (32.8, -96.8),
    "ca-central": (45.5, -73.6), "sa-east": (-23.5, -46.6), "eu-west": (53.3, -6.3), "eu-central": (50.1, 8.7),
    "eu-north": (59.3, 18.1), "eu-south": (45.5, 9.2), "uk": (51.5, -0.1), "me-central": (25.2, 55.3),
    "asia-south": (19.1, 72.9), "asia-southeast": (1.35, 103.8), "asia-east": (24.1, 120.7),
    "asia-northeast": (35.7, 139.7), "oceania": (-33.9, 151.2), "africa-south": (-26.2, 28.0),
    # AWS
    "us-east-1": (38.9, -77.4), "us-east-2": (40.0, -83.0), "us-west-1": (37.4, -121.9), "us-west-2": (45.6, -121.2),
    "ca-central-1": (45.5, -73.6), "eu-west-1": (53.3, -6.3), "eu-west-2": (51.5, -0.1), "eu-central-1": (50.1, 8.7),
    "eu-north-1": (59.3, 18.1), "ap-northeast-1": (35.7, 139.7), "ap-southeast-1": (1.35, 103.8),
    "ap-south-1": (19.1, 72.9), "ap-southeast-2": (-33.9, 151.2), "sa-east-1": (-23.5, -46.6),
    # GCP
    "us-central1": (41.3, -95.9), "us-east4": (38.9, -77.4), "us-east1": (33.2, -80.0), "us-west1": (45.6, -121.2),
    "europe-west4": (53.4, 6.8), "europe-west1": (50.5, 3.8), "europe-west3": (50.1, 8.7),
    "asia-east1": (24.1, 120.7), "asia-northeast1": (35.7, 139.7), "asia-southeast1": (1.35, 103.8),
    # Azure
    "eastus": (37.4, -79.8), "eastus2": (36.7, -78.4), "southcentralus": (29.4, -98.5), "westus2": (47.2, -119.9),
    "westus3": (33.4, -112.1), "northeurope": (53.3, -6.3), "westeurope": (52.4, 4.9), "swedencentral": (60.7, 17.1),
    "uksouth": (51.5, -0.1), "japaneast": (35.7, 139.7),
    # GPU clouds
    "us-south-1": (32.8, -96.8), "us-midwest-1": (41.9, -87.6), "us-east-04": (40.7, -74.2),
    "us-central-03": (39.1, -94.6), "eu-ro-1": (44.4, 26.1), "eu-se-1": (59.3, 18.1), "us-ca-2": (37.4, -121.9),
}

# Fibre carries light at about 200 km per ms; real routes run ~1.5x the great circle, plus a few
# ms of switching at the ends.
FIBRE_KM_PER_MS = 200.0
ROUTE_STRETCH = 1.5
RTT_BASE_MS = 2.0
LOCAL = "local"
DEFAULT_MFU = 0.35  # MFU prior of an accelerator not in GPU_SPECS


def rtt_ms(a: tuple[float, float], b: tuple[float, float]) -> float:
    r"""Round trip between two points.

    $$ \mathrm{RTT} = 2 + 2 \cdot 1.5 \cdot d_{\mathrm{gc}}(a, b) / (200\ \mathrm{km/ms}) $$
    with $d_{gc}$ the great-circle distance (haversine, Earth radius 6371 km).
    """
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    d_km = 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))
    return RTT_BASE_MS + 2 * ROUTE_STRETCH * d_km / FIBRE_KM_PER_MS


LAUNCHERS = ("local", "slurm", "cloud")


def local_machine(price_hour: float = 0.0) -> dict[str, Any]:
    """This machine as a catalog row: a CPU node at `price_hour` (servers.local_price_hour).

    TFLOP/s and bandwidth were measured on a 2-core AMD EPYC build box (torch fp32 matmul 2048^2,
    2 threads: 0.168 TFLOP/s; torch tensor clone: 6.7 GB/s) and scale with the core count here.
    Memory is the machine's RAM.
    """
    import psutil

    cores = os.cpu_count() or 1
    return dict(name=LOCAL, provider=LOCAL, region=LOCAL, gpu="cpu", gpu_count=1,
                gpu_mem_gb=round(psutil.virtual_memory().total / 2**30, 1), tflops=0.084 * cores,
                mem_bw_gbs=6.7, interconnect="none", price_hour=float(price_hour), spot_hour=None, availability=1.0,
                spot_availability=1.0, rtt_ms=0.0, launcher="local", partition="", startup_s=0.0)


@dataclass
class ServerTable:
    """Catalog as numpy columns; row i of every array is server i. Per-accelerator figures."""

    name: np.ndarray  # (S,) str
    provider: np.ndarray  # (S,) str
    region: np.ndarray  # (S,) str
    gpu: np.ndarray  # (S,) str
    gpu_count: np.ndarray  # (S,) int
    gpu_mem_gb: np.ndarray  # (S,) float, per accelerator
    tflops: np.ndarray  # (S,) float, dense bf16 per accelerator (fp32 for cpu)
    mem_bw_gbs: np.ndarray  # (S,) float, per accelerator
    interconnect: np.ndarray  # (S,) str
    mfu: np.ndarray  # (S,) float, training-MFU prior
    price_hour: np.ndarray  # (S,) float, on-demand USD / node-hour
    spot_hour: np.ndarray  # (S,) float, NaN = no spot market
    availability: np.ndarray  # (S,) float
    spot_availability: np.ndarray  # (S,) float
    rtt_ms: np.ndarray  # (S,) float, to the user's region
    launcher: np.ndarray  # (S,) str, local | slurm | cloud
    partition: np.ndarray  # (S,) str, Slurm partition ("" otherwise)
    startup_s: np.ndarray  # (S,) float, wall time before training starts

    def __len__(self) -> int:
        return len(self.name)

    @property
    def is_cpu(self) -> np.ndarray:
        return self.gpu == "cpu"

    def subset(self, keep: np.ndarray) -> "ServerTable":
        return ServerTable(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def row(self, i: int) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)[i]
            out[f.name] = v.item() if hasattr(v, "item") else v
        if math.isnan(out["spot_hour"]):
            out["spot_hour"] = None
        return out

    def index(self, name: str) -> int:
        hits = np.flatnonzero(self.name == name)
        return int(hits[0]) if len(hits) else -1


def _num(row: dict, key: str, where: str, default: Any = None) -> float:
    v = row.get(key, default)
    if v is None or (isinstance(v, str) and v.strip() == ""):
        if default is None:
            raise UserError(f"catalog {where}: missing '{key}' (allowed: a number)")
        v = default
    try:
        return float(v)
    except (TypeError, ValueError):
        raise UserError(f"catalog {where}: invalid value for '{key}': {v!r} (allowed: a number)") from None


def table_from_rows(rows: list[dict[str, Any]], user_region: str,
                    extra_regions: dict[str, tuple[float, float]] | None = None) -> ServerTable:
    """Validate rows, fill accelerator specs from GPU_SPECS and network RTT from REGIONS."""
    regions = {**REGIONS, **(extra_regions or {})}
    if user_region not in regions:
        raise UserError(f"invalid value for 'servers.user_region': {user_region!r} "
                        f"(allowed: {', '.join(sorted(k for k in REGIONS if k.count('-') == 1))}, or any provider region)")
    home = regions[user_region]
    cols: dict[str, list] = {f.name: [] for f in fields(ServerTable)}
    seen: set[str] = set()
    for i, r in enumerate(rows):
        name = str(r.get("name") or "")
        where = f"row {i} ({name or 'no name'})"
        if not name:
            raise UserError(f"catalog {where}: missing 'name' (allowed: a unique server name)")
        if name in seen:
            raise UserError(f"catalog {where}: duplicate name {name!r} (allowed: unique names)")
        seen.add(name)
        gpu = str(r.get("gpu") or "")
        spec = GPU_SPECS.get(gpu, {})
        if not spec and any(r.get(k) in (None, "") for k in ("gpu_mem_gb", "tflops", "mem_bw_gbs")):
            raise UserError(f"catalog {where}: unknown gpu {gpu!r} (allowed: {', '.join(GPU_SPECS)}, "
                            f"or give gpu_mem_gb, tflops and mem_bw_gbs)")
        region = str(r.get("region") or "")
        if r.get("rtt_ms") not in (None, ""):
            rtt = _num(r, "rtt_ms", where)
        elif region == LOCAL:
            rtt = 0.0
        elif r.get("lat") not in (None, "") and r.get("lon") not in (None, ""):
            rtt = rtt_ms(home, (_num(r, "lat", where), _num(r, "lon", where)))
        elif region in regions:
            rtt = rtt_ms(home, regions[region])
        else:
            raise UserError(f"catalog {where}: unknown region {region!r} (allowed: a region of "
                            f"stratos/plan/catalog.py REGIONS, or give rtt_ms or lat/lon)")
        count = int(_num(r, "gpu_count", where, 1))
        if count < 1:
            raise UserError(f"catalog {where}: invalid value for 'gpu_count': {count} (allowed: an integer >= 1)")
        spot = r.get("spot_hour")
        cols["name"].append(name)
        cols["provider"].append(str(r.get("provider") or name.split("/")[0]))
        cols["region"].append(region)
        cols["gpu"].append(gpu)
        cols["gpu_count"].append(count)
        for k in ("gpu_mem_gb", "tflops", "mem_bw_gbs", "mfu"):
            cols[k].append(_num(r, k, where, spec.get(k, DEFAULT_MFU if k == "mfu" else None)))
        cols["interconnect"].append(str(r.get("interconnect") or spec.get("interconnect", "pcie")))
        cols["price_hour"].append(_num(r, "price_hour", where))
        cols["spot_hour"].append(float("nan") if spot in (None, "") else _num(r, "spot_hour", where))
        cols["availability"].append(_num(r, "availability", where, 1.0))
        cols["spot_availability"].append(_num(r, "spot_availability", where, 0.8))
        cols["rtt_ms"].append(rtt)
        launcher = str(r.get("launcher") or ("local" if name == LOCAL else "cloud"))
        if launcher not in LAUNCHERS:
            raise UserError(f"catalog {where}: invalid value for 'launcher': {launcher!r} "
                            f"(allowed: {', '.join(LAUNCHERS)})")
        if launcher == "slurm" and not r.get("partition"):
            raise UserError(f"catalog {where}: launcher slurm needs 'partition' (allowed: a Slurm partition name)")
        cols["launcher"].append(launcher)
        cols["partition"].append(str(r.get("partition") or ""))
        cols["startup_s"].append(_num(r, "startup_s", where, 0.0))
    arrays = {k: np.array(v, dtype=object if k in ("name", "provider", "region", "gpu", "interconnect", "launcher", "partition")
                          else (np.int64 if k == "gpu_count" else np.float64)) for k, v in cols.items()}
    for k in ("price_hour", "tflops", "mem_bw_gbs", "gpu_mem_gb", "mfu"):
        bad = np.flatnonzero(~(arrays[k] >= 0) | ((arrays[k] == 0) & (k != "price_hour")))
        if len(bad):
            raise UserError(f"catalog row {bad[0]} ({arrays['name'][bad[0]]}): invalid value for '{k}': "
                            f"{arrays[k][bad[0]]} (allowed: a number > 0)")
    return ServerTable(**arrays)


# ---------------------------------------------------------------- loading from files
_CSV_TEXT = {"name", "provider", "region", "gpu", "interconnect", "launcher", "partition"}


def _rows_of(obj: Any, url: str) -> list[dict]:
    if isinstance(obj, dict):
        obj = obj.get("servers")
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise UserError(f"invalid catalog {url!r}: expected a list of server rows or a mapping with 'servers' "
                        f"(allowed: YAML, JSON or CSV; see stratos/plan/catalog.py)")
    return obj


def load_rows(url: str) -> list[dict[str, Any]]:
    """Read catalog rows from an fsspec URL (.yaml/.yml, .json, .csv; compression inferred)."""
    base = url[:-3] if url.endswith(".gz") else url
    ext = base.rsplit(".", 1)[-1].lower() if "." in base.rsplit("/", 1)[-1] else ""
    if ext not in ("yaml", "yml", "json", "csv"):
        raise UserError(f"invalid value for 'servers.catalog': {url!r} (allowed: builtin, or a .yaml/.yml/.json/.csv URL)")
    try:
        with fsspec.open(url, "rt", compression="infer", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UserError(f"invalid value for 'servers.catalog': {url!r} (file not found)") from None
    if ext == "csv":
        rows = []
        for r in csv.DictReader(io.StringIO(text)):
            rows.append({k.strip(): (v.strip() if k.strip() in _CSV_TEXT else (v.strip() or None))
                         for k, v in r.items() if k is not None})
        return rows
    try:
        obj = json.loads(text) if ext == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserError(f"invalid catalog {url!r}: cannot parse {ext.upper()} ({str(e).splitlines()[0]})") from None
    return _rows_of(obj, url)


def save_rows(url: str, rows: list[dict[str, Any]]) -> str:
    """Write rows in the format named by the URL's extension (the inverse of `load_rows`)."""
    from stratos.artifacts import atomic_open

    ext = url.rsplit(".", 1)[-1].lower()
    with atomic_open(url) as f:
        if ext == "csv":
            keys = list(dict.fromkeys(k for r in rows for k in r))
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows([{k: ("" if r.get(k) is None else r.get(k)) for k in keys} for r in rows])
        elif ext == "json":
            json.dump({"servers": rows}, f, indent=1)
        else:
            yaml.safe_dump({"servers": rows}, f, sort_keys=False)
    return url
