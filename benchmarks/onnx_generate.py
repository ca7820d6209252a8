"""Greedy generation speed: ONNX Runtime with a KV-cache graph vs transformers `generate` (KV cache).

    python -m benchmarks.onnx_generate                     # the default tiny student (h128, L4, V384)
    python -m benchmarks.onnx_generate --hidden 64 --layers 2 --vocab 300 --threads 2

Same prompts (mahjong-like questions, batch 1 each, as served requests are), same number of new
tokens (EOS ignored, so both do equal work), identical greedy tokens checked. Both runtimes get the
same intra-op thread budget. A third row, ONNX Runtime *without* a KV cache (the whole prefix
recomputed per token), shows what the cache itself buys. Figures: tokens/s and p50/p95 latency of
one request; ratios are against torch measured in the same run, interleaved prompt by prompt so
background load on a shared machine affects both alike. Goal: ONNX Runtime >= 2x torch.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=384)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from stratos.export.hf import load_tokenizer
    from stratos.export.onnx_graph import export_onnx
    from stratos.export.ort_lm import OrtCausalLM
    from stratos.export.speed import _stats, compare_generate
    from tests.helpers.tiny_export import build_tiny_export, sample_texts
    from stratos.models.generate import encode_prompt

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_tiny_export(tmp, hidden=args.hidden, layers=args.layers, heads=args.heads, vocab=args.vocab,
                                  max_position=max(256, args.new_tokens + 64))
        model = AutoModelForCausalLM.from_pretrained(paths["hf"]).eval()
        tok = load_tokenizer(paths["hf"])
        prompts = [encode_prompt(tok, t.rsplit("\nStep", 1)[0]) for t in sample_texts(args.prompts, seed=1)]
        kv = OrtCausalLM(paths["onnx"], threads=args.threads)
        t0 = time.time()
        res = compare_generate(model, kv, prompts, args.new_tokens, tok.pad_token_id, repeats=args.repeats)
        nokv_dir = os.path.join(tmp, "onnx_nokv")
        export_onnx(model, nokv_dir, kv_cache=False)
        nokv = OrtCausalLM(nokv_dir, threads=args.threads)
        nokv.greedy(prompts[:1], args.new_tokens, pad_id=tok.pad_token_id)  # warm-up
        ref = [kv.greedy([p], args.new_tokens, pad_id=tok.pad_token_id) for p in prompts]
        lat, same = [], True
        for _ in range(args.repeats):
            for p, want in zip(prompts, ref):
                s = time.perf_counter()
                got = nokv.greedy([p], args.new_tokens, pad_id=tok.pad_token_id)
                lat.append(time.perf_counter() - s)
                same &= got == want
        res["onnx_no_kv"] = {**_stats(lat, args.new_tokens * len(lat)), "same_tokens": bool(same)}
        res["seconds"] = round(time.time() - t0, 2)
        n_params = sum(p.numel() for p in model.parameters())
    res["model"] = {"hidden": args.hidden, "layers": args.layers, "vocab": len(tok), "params": n_params}
    _print(res, args)
    if args.json:
        print(json.dumps(res, indent=2))
    return res


def _print(res: dict, args) -> None:
    m = res["model"]
    print(f"model: llama h{m['hidden']} L{m['layers']} V{m['vocab']} ({m['params'] / 1e6:.2f} M params); "
          f"{res['torch']['requests']} requests x {args.new_tokens} new tokens, batch 1, {args.threads} thread(s)")
    base = res["torch"]["tokens_per_s"]
    print(f"{'runtime':<28}{'tokens/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'vs torch':>10}")
    for key, label in (("torch", "torch generate (KV cache)"), ("onnx", "ONNX Runtime (KV cache)"),
                       ("onnx_no_kv", "ONNX Runtime (no cache)")):
        r = res[key]
        print(f"{label:<28}{r['tokens_per_s']:>10.0f}{r['p50_ms']:>10.2f}{r['p95_ms']:>10.2f}"
              f"{r['tokens_per_s'] / base:>9.2f}x")
    print(f"identical greedy tokens: onnx={res['same_tokens']} no-cache={res['onnx_no_kv']['same_tokens']}; "
          f"goal ONNX >= 2x torch: {'met' if res['speedup'] >= 2 else 'NOT met'} ({res['speedup']:.2f}x)")


if __name__ == "__main__":
    main()
