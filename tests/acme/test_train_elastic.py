import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from stratos.acme.backbone import encode, fine_tune
from stratos.acme.config import ElasticConfig
from stratos.acme.data import mahjong_dataset
from stratos.acme.elastic import ElasticModel
from stratos.acme.train_elastic import grid, importance_and_reorder, measure_accuracy, one_cycle, train_elastic


def test_grid_is_largest_first():
    g = grid([1.0, 0.5], [1.0, 0.5])
    assert g[0] == (1.0, 1.0) and g[-1] == (0.5, 0.5) and len(g) == 4


def test_elastic_training_lifts_small_subnetworks_towards_the_full_one(tok, make_tiny):
    ds = mahjong_dataset(400, seed=0)
    enc = encode(tok, ds.texts, 32)
    y = torch.as_tensor(ds.labels)
    model = make_tiny("bert", len(tok))
    fine_tune(model, enc, y, steps=40, lr=3e-3, batch_size=64, seed=0)  # a confident teacher
    importance_and_reorder(model, enc, y, 2, 64, 0)
    with torch.no_grad():
        teacher = model(**enc).logits

    def kl_smallest(el):  # KL(teacher || smallest sub-network), mean over the data
        with torch.no_grad():
            s = el(0.25, 0.25, **enc).logits
        return float(F.kl_div(F.log_softmax(s, -1), F.log_softmax(teacher, -1), log_target=True,
                              reduction="batchmean"))

    before = kl_smallest(ElasticModel(model).eval())
    e = OmegaConf.structured(ElasticConfig(widths=[1.0, 0.25], depths=[1.0, 0.25], steps=40, lr=3e-3,
                                           subnets_per_step=3))
    el = train_elastic(model, enc, y, e, seed=0)
    assert kl_smallest(el) < 0.5 * before  # the smallest sub-network learned to imitate the full model
    subnets = grid([1.0, 0.25], [1.0, 0.25])
    acc = measure_accuracy(el, enc, y, subnets)
    assert set(acc) == set(subnets) and all(0 <= a <= 1 for a in acc.values())
    assert acc[(1.0, 1.0)] >= acc[(0.25, 0.25)] - 0.05


@pytest.mark.parametrize("steps", [1, 2, 3, 10, 19, 20, 200])
def test_one_cycle_runs_every_step_count(steps):
    # OneCycleLR divides by its warm-up length: 10 % of 10 steps used to be a zero-step warm-up (ZeroDivisionError)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = one_cycle(opt, 1e-3, steps)
    lrs = []
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(0 < lr <= 1e-3 + 1e-12 for lr in lrs[:-1])
    if steps >= 10:
        assert max(lrs) > 10 * lrs[-1]  # it does anneal
