"""`servers` group (owner: stratos/plan/cost.py): the server catalog the planner chooses from, and Slurm.

It was called `cloud`; `cloud=NAME` and `cloud.KEY=VALUE` are still accepted for one release (the CLI
rewrites them with a deprecation line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from stratos.config.choices import Pricing


@dataclass
class SlurmConfig:
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    time_min: int = 60
    # read by conf/hydra/launcher/stratos_slurm*.yaml (None => the cluster's default)
    cpus_per_task: Optional[int] = None
    mem_gb: Optional[int] = None
    gpus_per_node: Optional[int] = None  # stratos_slurm; stratos_slurm_gpu uses trainer.devices
    max_requeue: int = 3  # requeues after *time-outs*; preemptions requeue without limit
    signal_delay_s: int = 120  # Slurm sends USR2 this long before the time limit: checkpoint + requeue
    array_parallelism: int = 256  # sweep jobs running at once
    # With a partition set, the planner also considers that partition as a server (`slurm/<partition>`):
    # one node of `gpu` x gpus_per_node (cpu: a node like this machine), at price_hour, and startup_s of
    # queueing + process start before training begins (part of its time and cost in the plan).
    gpu: str = "cpu"
    price_hour: float = 0.05  # USD per node-hour: what an hour of the partition costs you (charge-back)
    startup_s: float = 30.0


@dataclass
class ServersConfig:
    _target_: str = MISSING
    name: str = MISSING
    catalog: str = "builtin"  # builtin | any fsspec path to YAML/CSV/JSON
    include_local: bool = True
    synthetic_nodes: int = 0  # >0: generate a synthetic catalog of this many nodes (scale tests)
    user_region: str = "us-east"
    region_allowlist: list[str] = field(default_factory=list)  # empty => all
    pricing: Pricing = Pricing.on_demand
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    # catalog rows when catalog=builtin (conf/servers/catalog.yaml bundles real server types; fields in
    # stratos/plan/catalog.py): name, provider, region, gpu, gpu_count, price_hour, spot_hour, ...
    servers: list[dict[str, Any]] = field(default_factory=list)
    run_server: str = "local"  # catalog name of the machine the pipeline runs on when the plan is not executed
    local_price_hour: float = 0.10  # USD per hour of this machine (not 0: cost-first would be degenerate)
    api_usd_per_mtok: float = 2.0  # price of API-teacher (kind openai) tokens, USD per million
    min_availability: float = 0.0  # drop servers whose capacity availability (0..1) is below this
