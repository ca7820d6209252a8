import torch

from stratos.acme.elastic import extract
from stratos.acme.profile import count_params, device_energy_mj, device_latency_ms, mflops, subnet_cost
from stratos.acme.config import DeviceClassConfig


def test_costs_shrink_with_the_subnetwork(model, enc):
    one = {k: v[:1] for k, v in enc.items()}
    full, small = subnet_cost(model, 1.0, 1.0, one, runs=3), subnet_cost(extract(model, 0.25, 0.25), 0.25, 0.25, one, 3)
    assert full.params == count_params(model) and full.size_mb == full.params * 4 / 1e6
    assert small.params < full.params / 2 and small.mflops < full.mflops / 3 and small.host_ms > 0


def test_flops_match_the_linear_layer_count(make_tiny, tok):
    m = make_tiny("llama", len(tok))
    T = 10
    ids = {"input_ids": torch.randint(3, len(tok), (1, T)), "attention_mask": torch.ones(1, T, dtype=torch.long)}
    h, i, L, q, kv = 32, 64, 4, 32, 16  # hidden, intermediate, layers, q width (4 x 8), kv width (2 x 8)
    linear = 2 * T * L * (h * q + 2 * h * kv + q * h + 3 * h * i) + 2 * T * h * 4  # + score head (4 labels)
    attention = 2 * 2 * T * T * q * L  # QK^T and AV
    assert abs(mflops(m, ids) * 1e6 - (linear + attention)) / (linear + attention) < 0.02


def test_device_cost_model():
    from stratos.acme.profile import SubnetCost

    c = SubnetCost(1.0, 1.0, params=250_000, size_mb=1.0, mflops=10.0, host_ms=2.0)
    dev = DeviceClassConfig(slowdown=3.0, mj_per_mflop=0.1, mj_per_mb=0.5)
    assert device_latency_ms(c, dev) == 6.0 and device_energy_mj(c, dev) == 1.5
