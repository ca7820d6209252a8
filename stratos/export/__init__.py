"""Export: the distilled student as deployable artifacts (stage.py runs it in the pipeline).

hf           merged checkpoint + tokenizer + generation config + chat template (transformers 4.x and 5.x)
onnx_graph   ONNX export with a KV cache (past key/values in, present out)
ort_lm       incremental generation with ONNX Runtime over that graph
parity       ONNX-vs-torch logits (shapes, padded batches, cached steps) and greedy tokens
quantize     dynamic int8 and its accuracy change
speed        ONNX Runtime vs torch generate figures
onnx_target  deploy=onnx: export + parity + speed (+ int8)
vllm_target  deploy=vllm: `vllm serve` command, sbatch script, multi-LoRA, smoke test (smoke.py)
"""




def validate_deploy(d) -> None:
    """Range checks of the `deploy` group (export) that its types cannot express (UserError, one line)."""
    from stratos.errors import check_values

    checks = [
        ("deploy.onnx_opset", d.onnx_opset, 13 <= int(d.onnx_opset) <= 23, "13..23"),
        ("deploy.parity_tol", d.parity_tol, float(d.parity_tol) > 0, "a number > 0"),
        ("deploy.parity_prompts", d.parity_prompts, int(d.parity_prompts) >= 1, "an integer >= 1"),
        ("deploy.bench_prompts", d.bench_prompts, int(d.bench_prompts) >= 0, "an integer >= 0 (0 = skip)"),
        ("deploy.bench_new_tokens", d.bench_new_tokens, int(d.bench_new_tokens) >= 1, "an integer >= 1"),
        ("deploy.quant_eval_n", d.quant_eval_n, int(d.quant_eval_n) >= 0, "an integer >= 0"),
        ("deploy.threads", d.threads, int(d.threads) >= 1, "an integer >= 1"),
    ]
    check_values(checks)
