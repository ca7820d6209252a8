"""A tiny checkpoint in the exact format the distill stage hands to export (no downloads).

Used by the export/serve tests and benchmarks: a Llama-family (or qwen2 / gpt2) model built from
config plus a byte-level BPE trained locally on a few KB of task-like text, saved with
`save_pretrained` and `stratos.models.tokenizer.save_tokenizer` (tokenizer_class rewritten so
transformers 4.x loads it too).

    path = build_tiny_checkpoint("/tmp/tiny", hidden=64, layers=2, vocab=300)

`init_std` is larger than transformers' 0.02 on purpose: a randomly initialised tiny model then
has well-separated logits, so greedy decoding does not hinge on 1e-7 ties between runtimes.
"""

from __future__ import annotations

import random

import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

from stratos.models.tokenizer import save_tokenizer, train_tokenizer

SUITS = "mpsz"


def sample_texts(n: int = 200, seed: int = 0) -> list[str]:
    """Mahjong-like prompts and answers (a few KB) to train the tokenizer on."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tiles = sorted(f"{rng.randint(1, 9)}{rng.choice(SUITS[:3])}" for _ in range(13))
        waits = " ".join(sorted({f"{rng.randint(1, 9)}{rng.choice(SUITS[:3])}" for _ in range(rng.randint(1, 3))}))
        rows.append(f"Hand: {' '.join(tiles)}\nWhich tiles complete this hand?\n"
                    f"Step 1: count the tiles.\nAnswer: {waits}")
    return rows


def build_tiny_checkpoint(out_dir: str, *, family: str = "llama", hidden: int = 64, layers: int = 2, heads: int = 2,
                          kv_heads: int | None = None, vocab: int = 300, max_position: int = 256,
                          init_std: float = 0.2, seed: int = 0) -> str:
    """Save a randomly initialised tiny causal LM + tokenizer to `out_dir`; returns `out_dir`."""
    tok = train_tokenizer(sample_texts(seed=seed), vocab_size=vocab)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    kv = kv_heads or heads
    if family == "llama":
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=kv, intermediate_size=2 * hidden, max_position_embeddings=max_position,
                          tie_word_embeddings=True, initializer_range=init_std, **ids)
    elif family == "qwen2":
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=kv, intermediate_size=2 * hidden, max_position_embeddings=max_position,
                          tie_word_embeddings=True, initializer_range=init_std, **ids)
    elif family == "gpt2":
        cfg = GPT2Config(vocab_size=len(tok), n_embd=hidden, n_layer=layers, n_head=heads, n_inner=2 * hidden,
                         n_positions=max_position, initializer_range=init_std, **ids)
    else:
        raise ValueError(f"unknown family {family!r} (llama, qwen2, gpt2)")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    save_tokenizer(tok, out_dir)
    return out_dir


def build_tiny_export(out_dir: str, *, name: str = "tiny", kv_cache: bool = True, **arch) -> dict[str, str]:
    """An export-stage layout without running the stage: out_dir/src (the "distill" checkpoint),
    out_dir/hf (export_hf) and out_dir/onnx (KV-cache graph + tokenizer). Returns the three paths."""
    import os

    from stratos.export.hf import copy_tokenizer_files, export_hf
    from stratos.export.onnx_graph import export_onnx

    src = build_tiny_checkpoint(os.path.join(out_dir, "src"), **arch)
    hf = os.path.join(out_dir, "hf")
    export_hf(src, hf, name=name, max_new_tokens=64)
    onnx_dir = os.path.join(out_dir, "onnx")
    export_onnx(AutoModelForCausalLM.from_pretrained(hf), onnx_dir, kv_cache=kv_cache)
    copy_tokenizer_files(hf, onnx_dir)
    return {"src": src, "hf": hf, "onnx": onnx_dir}
