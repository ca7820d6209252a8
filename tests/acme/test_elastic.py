import pytest
import torch

from stratos.acme.arch import layout_of
from stratos.acme.elastic import ElasticModel, extract, reorder_, unit_scores, weight_importance


def _loss(m, b):
    return m(**{k: v for k, v in b.items() if k != "labels"}, labels=b["labels"]).loss


def _scores(model, enc):
    batch = {**enc, "labels": torch.arange(enc["input_ids"].shape[0]) % 4}
    return unit_scores(layout_of(model.config), weight_importance(model, [batch], _loss))


def test_reordering_preserves_the_function_and_sorts_units(model, enc):
    with torch.no_grad():
        before = model(**enc).logits
    reorder_(model, _scores(model, enc))
    with torch.no_grad():
        after = model(**enc).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    for s in _scores(model, enc):  # recomputed on the reordered model: already descending
        assert torch.all(s["group"][:-1] >= s["group"][1:] - 1e-6)
        assert torch.all(s["ffn"][:-1] >= s["ffn"][1:] - 1e-6)


def test_importance_ranks_a_silenced_head_last(tok, enc, make_tiny):
    model = make_tiny("bert", len(tok))
    with torch.no_grad():  # head 0 of layer 1 contributes nothing: zero its output-projection columns
        model.bert.encoder.layer[1].attention.output.dense.weight[:, 0:8] = 0
    scores = _scores(model, enc)
    assert scores[1]["q"][0] == scores[1]["q"].min() and scores[1]["q"][0] < scores[1]["q"][1:].min()
    reorder_(model, scores)
    sub = extract(model, 0.75, 1.0)  # 3 of 4 heads kept: the silenced one must be the one dropped
    assert sub.bert.encoder.layer[1].attention.output.dense.weight.abs().sum(0).min() > 0


@pytest.mark.parametrize("w,d", [(1.0, 1.0), (0.75, 1.0), (0.5, 0.5), (0.25, 0.75), (0.25, 0.25)])
def test_functional_slicing_equals_the_extracted_standalone_model(model, enc, w, d):
    elastic = ElasticModel(model).eval()
    with torch.no_grad():
        a = elastic(w, d, **enc).logits
        b = extract(model, w, d)(**enc).logits
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    if (w, d) == (1.0, 1.0):
        torch.testing.assert_close(a, model(**enc).logits)


def test_subnetwork_gradients_reach_only_the_kept_prefix(model, enc):
    elastic = ElasticModel(model).train()
    elastic(0.5, 0.5, **enc).logits.sum().backward()
    lay = layout_of(model.config)
    p = dict(model.named_parameters())
    ffn_in = p[f"{lay.layer_name(0, lay.ffn_rows[0])}.weight"].grad  # (intermediate, hidden)
    assert ffn_in[:32].abs().sum() > 0 and ffn_in[32:].abs().sum() == 0  # 64 neurons, width .5 keeps 32
    assert p[f"{lay.layer_name(1, lay.ffn_rows[0])}.weight"].grad is None  # layer 1 is not in depth .5 = [0, 2]
