"""Export: the distilled student as deployable artifacts (stage.py runs it in the pipeline).

hf           merged checkpoint + tokenizer + generation config + chat template (transformers 4.x and 5.x)
onnx_graph   ONNX export with a KV cache (past key/values in, present out)
ort_lm       incremental generation with ONNX Runtime over that graph
parity       ONNX-vs-torch logits (shapes, padded batches, cached steps) and greedy tokens
quantize     dynamic int8 and its accuracy change
speed        ONNX Runtime vs torch generate figures
onnx_target  deploy=onnx: export + parity + speed (+ int8)
vllm_target  deploy=vllm: `vllm serve` command, sbatch script, multi-LoRA, smoke test (smoke.py)
tiny         tiny checkpoints in the distill output format (tests, benchmarks)
"""
