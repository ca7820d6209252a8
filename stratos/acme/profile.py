"""Cost of each sub-network: size, FLOPs, host latency, and per-device-class latency and energy.

  size_mb    float32 weights of the standalone sub-network (params * 4 / 1e6)
  mflops     torch.utils.flop_counter on one sequence of the task's length (batch 1)
  host_ms    median wall time of that forward on this machine, 1 thread (measured, noisy when the
             CPU is shared: the median of `runs` and a warm-up keep it usable for ranking)
  device_ms  host_ms * slowdown of the device class (a declared speed ratio: no device here)
  energy_mj  mj_per_mflop * mflops + mj_per_mb * size_mb: compute plus reading every weight once
             (a declared per-class cost model; no power meter here)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import PreTrainedModel


@dataclass
class SubnetCost:
    width: float
    depth: float
    params: int
    size_mb: float
    mflops: float
    host_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


def count_params(model: PreTrainedModel) -> int:
    return sum(p.numel() for p in model.parameters())


def mflops(model: PreTrainedModel, inputs: dict[str, torch.Tensor]) -> float:
    """Counted under eager attention: the fused CPU SDPA kernels (causal) are invisible to the flop counter."""
    old = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(**inputs)
    finally:
        model.set_attn_implementation(old)
    return fc.get_total_flops() / 1e6


def host_latency_ms(model: PreTrainedModel, inputs: dict[str, torch.Tensor], runs: int = 20) -> float:
    """Median forward time (ms) of `inputs` after 3 warm-up calls."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(runs + 3):
            t0 = time.perf_counter()
            model(**inputs)
            if i >= 3:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def subnet_cost(model: PreTrainedModel, width: float, depth: float, one: dict[str, torch.Tensor], runs: int = 20
                ) -> SubnetCost:
    """`one` = one tokenised example (1, T)."""
    n = count_params(model)
    return SubnetCost(width=width, depth=depth, params=n, size_mb=n * 4 / 1e6, mflops=mflops(model, one),
                      host_ms=host_latency_ms(model, one, runs))


def device_latency_ms(cost: SubnetCost, device) -> float:
    return cost.host_ms * float(device.slowdown)


def device_energy_mj(cost: SubnetCost, device) -> float:
    return float(device.mj_per_mflop) * cost.mflops + float(device.mj_per_mb) * cost.size_mb
