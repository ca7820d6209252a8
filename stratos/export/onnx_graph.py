r"""Export a transformers causal LM to ONNX with a KV cache (past key/values in, present out).

One graph serves both phases of generation, so decoding is incremental:

    prefill   input_ids (B, T), past of length P = 0          -> logits (B, T, V), present (B, H_kv, T, D)
    decode    input_ids (B, 1), past of length P (last step)   -> logits (B, 1, V), present (B, H_kv, P+1, D)

Inputs (names follow the Optimum / onnxruntime-genai convention so other tools recognise them):
    input_ids                   int64 (B, T)
    attention_mask              int64 (B, P+T)   1 = real token, 0 = left padding
    position_ids                int64 (B, T)     cumsum(attention_mask) - 1, so left-padded rows count from 0
    past_key_values.{i}.key     float (B, H_kv, P, D)   for each layer i (and .value)
Outputs:
    logits                      float (B, T, V)
    present.{i}.key             float (B, H_kv, P+T, D)  (and .value)

The wrapper hands the model flat tensors and returns flat tensors: cache *objects* cannot cross the
ONNX boundary (NOTES.md: "wrap the model to return logits + present kv"). Position ids are an input
rather than derived inside the graph because transformers derives them from `cache_position`, which
is wrong for left-padded rows; `generate` computes them from the mask exactly as we do.

Two exporters: the TorchScript-based one (`dynamo=False`, ~0.3 s, deprecated upstream but exact) is
the default because the export stage must take seconds; `dynamo=True` uses torch.export (~5-10 s).
Both were measured at <= 3e-7 max abs logit difference on tiny models (see tests/export).
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass

import torch
from transformers import DynamicCache

ONNX_FILE = "model.onnx"
META_FILE = "stratos_onnx.json"


@dataclass
class OnnxMeta:
    """What a runtime needs to drive the graph (written beside it as stratos_onnx.json)."""

    num_layers: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int
    opset: int
    dynamo: bool
    input_names: list[str]
    output_names: list[str]
    kv_cache: bool = True
    export_seconds: float = 0.0
    file: str = ONNX_FILE

    @classmethod
    def load(cls, model_dir: str) -> "OnnxMeta":
        with open(os.path.join(model_dir, META_FILE)) as f:
            return cls(**json.load(f))


def past_names(num_layers: int, prefix: str = "past_key_values") -> list[str]:
    """[prefix.0.key, prefix.0.value, prefix.1.key, ...] — the flat cache order used everywhere."""
    return [f"{prefix}.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


class KVCacheWrapper(torch.nn.Module):
    """`forward(input_ids, attention_mask, position_ids, *past)` -> `(logits, *present)` on flat tensors.

    With `num_layers=0` it is the cache-less graph: `(logits,)` only, every step recomputes the prefix.
    """

    def __init__(self, model: torch.nn.Module, num_layers: int) -> None:
        super().__init__()
        self.model = model
        self.num_layers = num_layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        if self.num_layers == 0:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             use_cache=False)
            return (out.logits,)
        pairs = [(past[2 * i], past[2 * i + 1]) for i in range(self.num_layers)]
        cache = DynamicCache(pairs, config=self.model.config)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True)
        flat = []
        for layer in out.past_key_values.layers:
            flat += [layer.keys, layer.values]
        return (out.logits, *flat)


def cache_geometry(model: torch.nn.Module) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) read off a real forward pass, so every family (llama, qwen2, gpt2,
    grouped-query or not, explicit head_dim or not) is handled without per-family config parsing."""
    with torch.inference_mode():
        out = model(input_ids=torch.zeros((1, 1), dtype=torch.long), use_cache=True)
    layers = out.past_key_values.layers
    _, kv_heads, _, head_dim = layers[0].keys.shape
    return len(layers), int(kv_heads), int(head_dim)


def _example_inputs(vocab: int, layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype):
    # Trace with P > 0 and T > 1 (and B > 1) so no dimension is specialised to 0 or 1: the traced
    # cache-concat and causal-mask paths are the general ones; P = 0 then works at run time.
    b, p, t = 2, 3, 4
    ids = torch.randint(0, vocab, (b, t))
    mask = torch.ones((b, p + t), dtype=torch.long)
    pos = torch.arange(p, p + t).expand(b, t).contiguous()
    past = [torch.randn(b, kv_heads, p, head_dim, dtype=dtype) for _ in range(2 * layers)]
    return (ids, mask, pos, *past)


def export_onnx(model: torch.nn.Module, out_dir: str, opset: int = 17, dynamo: bool = False,
                kv_cache: bool = True) -> OnnxMeta:
    """Write `out_dir/model.onnx` (+ stratos_onnx.json) for `model`; returns the meta.

    `kv_cache=False` exports the logits-only graph (the slow baseline: no past in or out).

    The model is exported in float32 with eager attention: the graph is then plain MatMul/Softmax
    that ONNX Runtime optimises itself (no SDPA kernel to translate). The caller's model keeps its own
    attention implementation afterwards, and parity is checked against that.
    """
    os.makedirs(out_dir, exist_ok=True)
    model = model.float().eval()
    attn = getattr(model.config, "_attn_implementation", None)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    try:
        return _export(model, out_dir, opset, dynamo, kv_cache)
    finally:  # the caller's model keeps its own attention kernel (parity is checked against it)
        if attn and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn)


def _export(model, out_dir: str, opset: int, dynamo: bool, kv_cache: bool) -> OnnxMeta:
    opset = max(opset, 18) if dynamo else opset  # the torch.export-based exporter emits opset >= 18
    layers, kv_heads, head_dim = cache_geometry(model)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    cfg = model.config
    max_pos = int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 0) or 0)
    graph_layers = layers if kv_cache else 0
    ins = ["input_ids", "attention_mask", "position_ids", *past_names(graph_layers)]
    outs = ["logits", *past_names(graph_layers, "present")]
    args = _example_inputs(vocab, graph_layers, kv_heads, head_dim, torch.float32)
    if not kv_cache:  # no past: the mask covers exactly the input tokens
        args = (args[0], args[1][:, -args[0].shape[1]:].contiguous(), args[2])
    wrapper = KVCacheWrapper(model, graph_layers).eval()
    path = os.path.join(out_dir, ONNX_FILE)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python branches on shapes: all general here
        if dynamo:
            _export_dynamo(wrapper, args, path, ins, outs, graph_layers, opset)
        else:
            _export_legacy(wrapper, args, path, ins, outs, opset)
    meta = OnnxMeta(num_layers=layers, kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab, max_positions=max_pos,
                    opset=opset, dynamo=dynamo, input_names=ins, output_names=outs, kv_cache=kv_cache,
                    export_seconds=round(time.time() - t0, 3))
    with open(os.path.join(out_dir, META_FILE), "w") as f:
        json.dump(asdict(meta), f, indent=2)
    return meta


def _export_legacy(wrapper, args, path, ins, outs, opset) -> None:
    dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
           "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    dyn.update({n: {0: "batch", 2: "past"} for n in ins[3:]})
    dyn.update({n: {0: "batch", 2: "total"} for n in outs[1:]})
    with torch.no_grad():
        torch.onnx.export(wrapper, args, path, input_names=ins, output_names=outs, dynamic_axes=dyn,
                          opset_version=opset, dynamo=False, do_constant_folding=True)


def _export_dynamo(wrapper, args, path, ins, outs, layers, opset) -> None:
    from torch.export import Dim

    # torch.export cannot express "total = past + seq" across inputs, so `total` is its own symbol;
    # the graph's Concat still ties them together at run time.
    batch, seq = Dim("batch", min=1, max=1024), Dim("seq", min=1, max=65536)
    past, total = Dim("past", min=0, max=65536), Dim("total", min=1, max=131072)
    shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total if layers else seq},
              "position_ids": {0: batch, 1: seq}}
    if layers:
        shapes["past"] = tuple({0: batch, 2: past} for _ in range(2 * layers))
    # the exporter logs one warning per torchvision op it cannot register; torchvision is not used here
    reg_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = reg_log.level
    reg_log.setLevel(logging.ERROR)
    try:
        torch.onnx.export(wrapper, args, path, input_names=ins, output_names=outs, dynamic_shapes=shapes,
                          opset_version=opset, dynamo=True, verbose=False)
    finally:
        reg_log.setLevel(level)
