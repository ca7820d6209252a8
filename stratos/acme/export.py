"""Every sub-network as a standalone artifact: an HF folder (save_pretrained) and an ONNX graph.

The HF folder holds the sliced config (heads, neurons, layers and `stratos_elastic` provenance),
the weights and the tokenizer; BERT-family folders also carry `hf_bert.py` + `auto_map`, so
`AutoModelForSequenceClassification.from_pretrained(dir, trust_remote_code=True)` loads them
without Stratos. The ONNX graph maps (input_ids, attention_mask) (B, T) int64 -> logits (B, C),
with dynamic batch and sequence axes; parity against torch is checked on the export batch and on a
second batch of a different shape.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from stratos.acme import hf_bert  # noqa: F401  (registers stratos_bert)


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def save_subnet(model: PreTrainedModel, tokenizer, path: str) -> int:
    """save_pretrained model + tokenizer into `path`; returns the folder's size in bytes."""
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return dir_bytes(path)


def load_subnet(path: str) -> tuple[PreTrainedModel, object]:
    return AutoModelForSequenceClassification.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


class _LogitsOnly(nn.Module):
    """forward(input_ids, attention_mask) -> logits; no cache objects or dict outputs in the graph."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        kw = {"use_cache": False} if self.model.config.model_type != "stratos_bert" else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kw).logits


def export_onnx(model: PreTrainedModel, path: str, enc: dict[str, torch.Tensor], opset: int = 17) -> None:
    """Legacy TorchScript exporter (0.5 s vs 8-11 s for dynamo here, same parity: shared NOTES)."""
    model = model.eval()
    # eager attention traces to plain matmul/softmax ops every runtime has
    model.set_attn_implementation("eager")
    inputs = (enc["input_ids"], enc["attention_mask"])
    with warnings.catch_warnings():  # tracer notes on mask shape checks; `onnx_parity` is what guards correctness
        warnings.simplefilter("ignore")
        _export(model, inputs, path, opset)


def _export(model: PreTrainedModel, inputs: tuple, path: str, opset: int) -> None:
    torch.onnx.export(_LogitsOnly(model), inputs, path, input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], opset_version=opset, dynamo=False,
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch"}})


def onnx_parity(model: PreTrainedModel, path: str, batches: list[dict[str, torch.Tensor]]) -> float:
    """Max |torch - onnxruntime| logits over `batches` (use different shapes to exercise the dynamic axes)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for b in batches:
            ref = _LogitsOnly(model.eval())(b["input_ids"], b["attention_mask"]).numpy()
            got = sess.run(["logits"], {"input_ids": b["input_ids"].numpy().astype(np.int64),
                                        "attention_mask": b["attention_mask"].numpy().astype(np.int64)})[0]
            worst = max(worst, float(np.abs(ref - got).max()))
    return worst
