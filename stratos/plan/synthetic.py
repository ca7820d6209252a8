"""Large synthetic server catalogs for scale tests (`servers.synthetic_nodes=3700`).

Rows look like the bundled catalog: an accelerator type drawn from `GPU_SPECS` with a
market-like weight, a node size, a provider and one of its regions, and a price

$$ p = \bar p_{\mathrm{gpu}} \cdot n_{\mathrm{gpu}} \cdot u_{\mathrm{region}} \cdot e^{\varepsilon},
   \quad \varepsilon \sim \mathcal N(0, 0.15^2) $$

with $\bar p$ a typical on-demand price per accelerator-hour, $u$ a regional uplift and spot
markets on 70 % of rows at 30-60 % of on-demand. Deterministic for a given (n, seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stratos.plan.catalog import GPU_SPECS

# typical on-demand USD per accelerator-hour (2024-2025 public list prices, rounded) and market weight
PRICE_PER_GPU = {
    "T4": (0.45, 3), "V100": (2.5, 1), "L4": (0.75, 4), "A10G": (1.0, 4), "A10": (0.75, 2), "RTX4090": (0.6, 2),
    "RTXA6000": (0.8, 1), "L40S": (1.8, 3), "A100-40": (2.5, 3), "A100-80": (3.0, 4), "A100-80-PCIe": (2.0, 2),
    "H100": (5.0, 5), "H100-PCIe": (3.0, 2), "H100-NVL": (4.5, 1), "GH200": (2.5, 1), "H200": (6.0, 3),
    "MI300X": (4.0, 2), "B200": (8.0, 1),
}
PROVIDERS = {
    "aws": (["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-south-1"], 1.0),
    "gcp": (["us-central1", "us-east4", "us-west1", "europe-west4", "asia-east1", "asia-southeast1"], 0.95),
    "azure": (["eastus", "southcentralus", "westus2", "westeurope", "swedencentral", "japaneast"], 1.0),
    "lambda": (["us-east-1", "us-west-1", "us-south-1", "us-midwest-1"], 0.6),
    "coreweave": (["us-east-04", "us-central-03", "eu-se-1"], 0.75),
    "runpod": (["eu-ro-1", "us-ca-2", "eu-se-1"], 0.55),
}
REGION_UPLIFT = {"eu": 1.1, "ap": 1.2, "as": 1.2, "ja": 1.2, "sw": 1.05, "we": 1.1}


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` catalog rows with unique names."""
    rng = np.random.default_rng(seed)
    gpus = list(PRICE_PER_GPU)
    weights = np.array([PRICE_PER_GPU[g][1] for g in gpus], dtype=float)
    gpu_idx = rng.choice(len(gpus), size=n, p=weights / weights.sum())
    counts = rng.choice([1, 2, 4, 8], size=n, p=[0.4, 0.15, 0.2, 0.25])
    provs = list(PROVIDERS)
    prov_idx = rng.integers(0, len(provs), size=n)
    jitter = np.exp(rng.normal(0.0, 0.15, size=n))
    has_spot = rng.random(n) < 0.7
    spot_share = rng.uniform(0.3, 0.6, size=n)
    avail = rng.uniform(0.6, 1.0, size=n)
    spot_avail = rng.uniform(0.6, 0.95, size=n)
    region_pick = rng.random(n)
    rows = []
    for i in range(n):
        gpu = gpus[gpu_idx[i]]
        count = 1 if gpu == "GH200" else int(counts[i])  # a GH200 superchip is sold one per node
        prov = provs[prov_idx[i]]
        regions, discount = PROVIDERS[prov]
        region = regions[int(region_pick[i] * len(regions))]
        uplift = REGION_UPLIFT.get(region[:2], 1.0)
        price = PRICE_PER_GPU[gpu][0] * count * discount * uplift * jitter[i]
        rows.append(dict(
            name=f"{prov}/synth-{i:05d}-{gpu.lower()}x{count}/{region}", provider=prov, region=region, gpu=gpu,
            gpu_count=count, price_hour=round(float(price), 4),
            spot_hour=round(float(price * spot_share[i]), 4) if has_spot[i] else None,
            availability=round(float(avail[i]), 3), spot_availability=round(float(spot_avail[i]), 3),
        ))
    assert all(g in GPU_SPECS for g in gpus)
    return rows
