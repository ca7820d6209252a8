"""The `servers` config group (the server catalog): which servers a plan may use and what an hour on them costs.

`conf/servers/*.yaml` name `_target_: stratos.plan.cost.build_cloud`, so
`hydra.utils.instantiate(cfg.servers)` (or `cloud_from_cfg(cfg.servers)`) gives a `Cloud`: the
catalog after the region allow-list and availability floor, priced for `servers.pricing`.
Launchers read `cfg.servers.slurm` directly.

Pricing, per node-hour of a server with $n$ accelerators of which a plan uses $k$:

$$ c_{\mathrm{hour}} = p \cdot k / n, \qquad
   p = \begin{cases} p_{\mathrm{on\ demand}} & \text{on\_demand, or no spot market} \\
                     p_{\mathrm{spot}} & \text{spot} \end{cases} $$

Spot capacity is preempted; with checkpointing the lost work is the preempted share, so the
wall time stretches by $1 / a_{\mathrm{spot}}$ (`time_factor`), and the deadline sees that.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from stratos.errors import UserError, bad_value
from stratos.plan.catalog import LOCAL, ServerTable, load_rows, local_machine, table_from_rows
from stratos.plan.synthetic import synthetic_rows


@dataclass
class Cloud:
    servers: ServerTable  # after allow-list and availability floor
    price_hour: np.ndarray  # (S,) USD per node-hour under the chosen pricing
    time_factor: np.ndarray  # (S,) >= 1, wall-time stretch from spot preemption
    availability: np.ndarray  # (S,) chance capacity is there (on-demand) / share not preempted (spot)
    pricing: str = "on_demand"
    user_region: str = "us-east"
    api_usd_per_mtok: float = 2.0
    run_server: dict[str, Any] | None = None  # catalog row of the machine the pipeline runs on
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> servers removed

    def __len__(self) -> int:
        return len(self.servers)


def _allowed(regions: np.ndarray, allow: list[str]) -> np.ndarray:
    """Region allow-list: exact names or shell patterns ("eu-*", "europe-*"). `local` always passes:
    a job on the user's own machine keeps the data where it is."""
    if not allow:
        return np.ones(len(regions), dtype=bool)
    return np.array([r == LOCAL or any(fnmatch.fnmatchcase(r, p) for p in allow) for r in regions], dtype=bool)


def build_cloud(name: str = "catalog", catalog: str = "builtin", include_local: bool = True,
                synthetic_nodes: int = 0, user_region: str = "us-east", region_allowlist: list[str] | None = None,
                pricing: str = "on_demand", servers: list[dict] | None = None, run_server: str = LOCAL,
                api_usd_per_mtok: float = 2.0, min_availability: float = 0.0, seed: int = 0,
                local_price_hour: float = 0.0, slurm: dict | None = None, **_: Any) -> Cloud:
    """Assemble the catalog: inline `servers` (catalog=builtin) or rows from the `catalog` URL, or a
    synthetic catalog of `synthetic_nodes` rows instead; plus this machine when `include_local`, plus
    the Slurm partition `slurm.partition` when one is named."""
    if pricing not in ("on_demand", "spot"):
        raise bad_value("servers.pricing", pricing, "on_demand, spot")
    if not 0.0 <= float(min_availability) <= 1.0:
        raise bad_value("servers.min_availability", min_availability, "0 <= availability <= 1")
    if int(synthetic_nodes) < 0:
        raise bad_value("servers.synthetic_nodes", synthetic_nodes, "an integer >= 0")
    if int(synthetic_nodes) > 0:
        rows = synthetic_rows(int(synthetic_nodes), seed=seed)
    elif catalog == "builtin":
        rows = [dict(r) for r in (servers or [])]
    else:
        rows = load_rows(catalog)
    if float(local_price_hour) < 0:
        raise bad_value("servers.local_price_hour", local_price_hour, "dollars per hour >= 0")
    rows = [r for r in rows if r.get("name") != LOCAL]
    local = local_machine(float(local_price_hour))
    if include_local:
        rows.append(local)
    if slurm and slurm.get("partition"):
        rows = [r for r in rows if r.get("name") != slurm_row(slurm, local)["name"]] + [slurm_row(slurm, local)]
    table = table_from_rows(rows, user_region)
    if len(table) == 0:
        raise UserError(f"server catalog '{name}' lists no servers (allowed: set servers.include_local=true, "
                        f"servers.catalog=<URL>, or servers.synthetic_nodes=N)")
    dropped = {}
    keep = _allowed(table.region, list(region_allowlist or []))
    dropped["region_allowlist"] = int((~keep).sum())
    if not keep.any():
        raise UserError(f"invalid value for 'servers.region_allowlist': {list(region_allowlist or [])} matches no "
                        f"server (allowed: patterns over {', '.join(sorted(set(table.region.tolist())))})")
    spot = pricing == "spot"
    has_spot = ~np.isnan(table.spot_hour)
    avail = np.where(spot & has_spot, table.spot_availability, table.availability)
    ok = avail >= float(min_availability)
    dropped["min_availability"] = int((keep & ~ok).sum())
    keep &= ok
    if not keep.any():
        raise UserError(f"invalid value for 'servers.min_availability': {min_availability} leaves no server "
                        f"(allowed: at most {float(avail.max()):.2f} for this catalog)")
    table = table.subset(keep)
    avail = avail[keep]
    has_spot = has_spot[keep]
    price = np.where(spot & has_spot, np.nan_to_num(table.spot_hour), table.price_hour)
    time_factor = np.where(spot & has_spot, 1.0 / np.maximum(table.spot_availability, 1e-3), 1.0)
    run_row = None
    if run_server:
        i = table.index(run_server)
        if i >= 0:
            run_row = table.row(i)
        elif run_server == LOCAL:
            run_row = table_from_rows([local], user_region).row(0)
    return Cloud(servers=table, price_hour=price, time_factor=time_factor, availability=avail, pricing=pricing,
                 user_region=user_region, api_usd_per_mtok=float(api_usd_per_mtok), run_server=run_row,
                 dropped=dropped)


def slurm_row(slurm: dict, local: dict) -> dict[str, Any]:
    """The named Slurm partition as a catalog row. A CPU partition is taken to have nodes like this
    machine (its measured TFLOP/s and bandwidth); a GPU partition gets the accelerator's datasheet."""
    gpu = str(slurm.get("gpu") or "cpu")
    row = {"name": f"slurm/{slurm['partition']}", "provider": "slurm", "region": LOCAL, "gpu": gpu,
           "gpu_count": int(slurm.get("gpus_per_node") or 1), "price_hour": float(slurm.get("price_hour", 0.05)),
           "availability": 1.0, "rtt_ms": 0.0, "launcher": "slurm", "partition": str(slurm["partition"]),
           "startup_s": float(slurm.get("startup_s", 30.0))}
    if gpu == "cpu":
        row.update({k: local[k] for k in ("gpu_mem_gb", "tflops", "mem_bw_gbs", "interconnect")})
    return row


def subset_cloud(cloud: Cloud, keep: np.ndarray) -> Cloud:
    """The same catalog restricted to the rows in `keep` (e.g. a server the user pinned)."""
    return Cloud(servers=cloud.servers.subset(keep), price_hour=cloud.price_hour[keep],
                 time_factor=cloud.time_factor[keep], availability=cloud.availability[keep], pricing=cloud.pricing,
                 user_region=cloud.user_region, api_usd_per_mtok=cloud.api_usd_per_mtok, run_server=cloud.run_server,
                 dropped=cloud.dropped)


def cloud_from_cfg(cloud_cfg: DictConfig, seed: int = 0) -> Cloud:
    """`build_cloud` from the composed `cfg.servers` (what Hydra's instantiate would do)."""
    kwargs = OmegaConf.to_container(cloud_cfg, resolve=True)
    kwargs.pop("_target_", None)
    return build_cloud(seed=seed, **kwargs)


def validate_servers(c) -> None:
    """Range checks of the `servers` group (the server catalog) that its types cannot express."""
    if not 0.0 <= float(c.min_availability) <= 1.0:
        raise bad_value("servers.min_availability", c.min_availability, "0 <= availability <= 1")
    if float(c.api_usd_per_mtok) < 0:
        raise bad_value("servers.api_usd_per_mtok", c.api_usd_per_mtok, "dollars >= 0")
    if float(c.local_price_hour) < 0:
        raise bad_value("servers.local_price_hour", c.local_price_hour, "dollars per hour >= 0")
    if float(c.slurm.price_hour) < 0 or float(c.slurm.startup_s) < 0:
        raise bad_value("servers.slurm.price_hour", c.slurm.price_hour, "dollars per hour >= 0, startup_s >= 0")
    if int(c.synthetic_nodes) < 0:
        raise bad_value("servers.synthetic_nodes", c.synthetic_nodes, "an integer >= 0 (0 = no synthetic catalog)")
