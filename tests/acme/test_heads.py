import pytest
import torch
from omegaconf import OmegaConf

from stratos.acme.config import HeadSearchConfig
from stratos.acme.heads import (HeadArch, head_accuracy, head_importance, n_params, new_head, pooled_features,
                                prune_head, search_heads, train_head)
from stratos.errors import UserError


def _blobs(n=300, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centers = torch.randn(3, dim, generator=g) * 3
    return centers[y] + torch.randn(n, dim, generator=g), y


def test_pooled_features_pick_the_token_that_sees_everything(model, enc):
    f = pooled_features(model, enc)
    with torch.no_grad():
        h = model.base_model(**enc).last_hidden_state
    m = enc["attention_mask"]
    last = m.sum(1) - 1
    want_cls = h[:, 0] if model.config.model_type == "stratos_bert" else h[torch.arange(len(h)), last]
    torch.testing.assert_close(f["cls"], want_cls)
    torch.testing.assert_close(f["mean"][0], h[0, : int(m[0].sum())].mean(0))  # padding excluded


def test_head_trains_and_param_count_is_exact():
    Z, y = _blobs()
    arch = HeadArch("mean", 16, 2)
    head = train_head(new_head(arch, Z, 3, 0), Z, y, 100, 1e-2, 0)
    assert head_accuracy(head, Z, y) > 0.9
    assert n_params(arch, 8, 3) == sum(p.numel() for p in head.parameters())


def test_pruning_keeps_the_important_units():
    Z, y = _blobs()
    head = train_head(new_head(HeadArch("mean", 16, 1), Z, 3, 0), Z, y, 100, 1e-2, 0)
    with torch.no_grad():
        full = head(Z)
    same = prune_head(head, head_importance(head, Z, y), 1.0)
    torch.testing.assert_close(same(Z), full)
    with torch.no_grad():
        head.out.weight[:, 3] = 0  # unit 3 is dead: lowest importance, pruned first
    scores = head_importance(head, Z, y)
    assert int(torch.argmin(scores[0])) == 3
    small = prune_head(head, scores, 15 / 16)
    assert small.hiddens == [15]
    with torch.no_grad():
        torch.testing.assert_close(small(Z), head(Z), atol=1e-5, rtol=1e-5)  # removing a dead unit changes nothing


def test_search_respects_the_budget_and_rejects_an_impossible_one():
    Z, y = _blobs()
    feats = {"cls": Z, "mean": Z + 0.0}
    space = OmegaConf.structured(HeadSearchConfig(hiddens=[4, 32], depths=[1, 2], steps=60))
    arch, head, table = search_heads(feats, y, 0.25, space, 3, max_params=200, seed=0)
    assert len(table) == 8 and n_params(arch, 8, 3) <= 200 and arch.hidden == 4
    assert all(r["val_acc"] is None for r in table if not r["fits"])
    with pytest.raises(UserError, match="head_max_params"):
        search_heads(feats, y, 0.25, space, 3, max_params=10, seed=0)
