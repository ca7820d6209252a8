"""ONNX target (deploy=onnx): a KV-cache graph that serves on ONNX Runtime, checked against torch.

Steps, each recorded in export/onnx/*.json and as manifest metrics:
  1. export     onnx_graph.export_onnx (legacy or dynamo exporter, opset, with/without KV cache)
  2. parity     max |logit diff| over single prompts + a left-padded batch + cached decode steps, and
                identical greedy tokens vs transformers `generate`; a miss beyond `parity_tol` fails
                the stage (shipping a graph that computes something else is a bug, not a metric)
  3. speed      quick ONNX Runtime vs torch generate figures (stratos.export.speed), as deploy/* metrics
                (the report shows them under "deploy")
  4. int8       optional dynamic quantisation with its accuracy change (quantize.py; task accuracy of
                fp32 vs int8 greedy answers on test rows when the task is known)

export/onnx/ is self-contained for `python -m stratos.serve --model export/onnx`: graph, meta,
tokenizer, generation config.
"""

from __future__ import annotations

import json
import logging
import os

import torch
from transformers import AutoModelForCausalLM

from stratos.config import DeployConfig
from stratos.errors import bad_value
from stratos.export.hf import copy_tokenizer_files, load_tokenizer
from stratos.export.job import ExportJob
from stratos.export.outputs import ONNX_DIR
from stratos.export.onnx_graph import export_onnx
from stratos.export.ort_lm import OrtCausalLM
from stratos.export.parity import greedy_parity, logit_parity
from stratos.export.quantize import INT8_FILE, compare_int8, quantize_int8
from stratos.export.speed import compare_generate

log = logging.getLogger("stratos")


def chat_prompt_ids(tokenizer, question: str) -> list[int]:
    """Token ids of `question` as one user turn of the exported chat template (= the training format)."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=True,
                                        add_generation_prompt=True)
    if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding, 4.x a plain list
        ids = ids["input_ids"]
    return list(ids)


_D = DeployConfig  # the one place the defaults live (conf/deploy/onnx.yaml sets only differences)


class OnnxTarget:
    """`build(job)` exports, checks and measures the ONNX graph; returns the manifest metrics."""

    def __init__(self, name: str = "onnx", onnx_opset: int = _D.onnx_opset, onnx_dynamo: bool = _D.onnx_dynamo,
                 kv_cache: bool = _D.kv_cache, quantize_int8: bool = _D.quantize_int8, parity_tol: float = _D.parity_tol,
                 parity_prompts: int = _D.parity_prompts, bench_prompts: int = _D.bench_prompts,
                 bench_new_tokens: int = _D.bench_new_tokens, quant_eval_n: int = _D.quant_eval_n,
                 threads: int = _D.threads, **_: object) -> None:
        # `**_`: the group's keys other targets use (vllm settings, the serve binding)
        self.name, self.opset, self.dynamo, self.kv_cache = name, int(onnx_opset), bool(onnx_dynamo), bool(kv_cache)
        self.int8, self.tol = bool(quantize_int8), float(parity_tol)
        self.parity_prompts, self.bench_prompts = int(parity_prompts), int(bench_prompts)
        self.bench_new_tokens, self.quant_eval_n = int(bench_new_tokens), int(quant_eval_n)
        self.threads = int(threads)
        if self.threads < 1:
            raise bad_value("deploy.threads", threads, "an integer >= 1")

    def build(self, job: ExportJob) -> dict:
        # Checks and figures use the serving thread budget (deploy.threads) for both runtimes: a fair
        # race, the configuration that will serve, and no oversubscription stalls on a shared CPU.
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._build(job)
        finally:
            torch.set_num_threads(prev)

    def _build(self, job: ExportJob) -> dict:
        out = job.ctx.local_dir(ONNX_DIR)
        model = AutoModelForCausalLM.from_pretrained(job.hf_dir).eval()
        tok = load_tokenizer(job.hf_dir)
        meta = export_onnx(model, out, opset=self.opset, dynamo=self.dynamo, kv_cache=self.kv_cache)
        copy_tokenizer_files(job.hf_dir, out)
        lm = OrtCausalLM(out, threads=self.threads)
        questions = job.questions or ["Hello"]
        prompts = [chat_prompt_ids(tok, q) for q in questions]
        pad, eos = tok.pad_token_id, tok.eos_token_id
        check = prompts[: max(self.parity_prompts, 1)]
        par = logit_parity(model, lm, check, pad)
        gre = greedy_parity(model, lm, check, min(job.max_new_tokens, 128), eos, pad)
        self._write(out, "parity.json", {"logits": par, "greedy": gre, "tolerance": self.tol})
        if par["max_abs_diff"] > self.tol or gre["greedy_match"] < 1.0:
            raise RuntimeError(f"ONNX graph disagrees with torch: max |logit diff| {par['max_abs_diff']:.3g} "
                               f"(tolerance {self.tol:g}), greedy match {gre['greedy_match']:.2f}; "
                               f"see {out}/parity.json")
        m = {"export/onnx_max_abs_diff": par["max_abs_diff"], "export/greedy_match": gre["greedy_match"],
             "export/onnx_export_s": meta.export_seconds, "export/onnx_kv_cache": int(self.kv_cache),
             "export/onnx_mb": os.path.getsize(os.path.join(out, meta.file)) / 2**20}
        if self.bench_new_tokens > 0 and self.bench_prompts > 0:
            sp = compare_generate(model, lm, prompts[: self.bench_prompts], self.bench_new_tokens, pad)
            self._write(out, "speed.json", sp)
            m.update({"deploy/onnx_tokens_per_s": sp["onnx"]["tokens_per_s"],
                      "deploy/torch_tokens_per_s": sp["torch"]["tokens_per_s"],
                      "deploy/onnx_p50_ms": sp["onnx"]["p50_ms"], "deploy/onnx_p95_ms": sp["onnx"]["p95_ms"],
                      "deploy/torch_p50_ms": sp["torch"]["p50_ms"], "deploy/torch_p95_ms": sp["torch"]["p95_ms"],
                      "deploy/onnx_speedup": sp["speedup"]})
            log.info("export: ONNX Runtime %.0f tok/s vs torch %.0f tok/s (x%.1f)", sp["onnx"]["tokens_per_s"],
                     sp["torch"]["tokens_per_s"], sp["speedup"])
        if self.int8:
            m.update(self._int8(job, out, lm, tok, prompts))
        return m

    def _int8(self, job: ExportJob, out: str, lm: OrtCausalLM, tok, prompts: list[list[int]]) -> dict:
        q_info = quantize_int8(out)
        q = OrtCausalLM(out, threads=self.threads, file=INT8_FILE)
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        cmp = compare_int8(lm, q, prompts[: max(self.parity_prompts, 1)], min(job.max_new_tokens, 128), eos,
                           tok.pad_token_id)
        res = {"quantize": q_info, "vs_fp32": cmp}
        m = {"export/int8_mb": q_info["int8_mb"], "export/int8_max_abs_diff": cmp["max_abs_diff"],
             "export/int8_top1_agreement": cmp["top1_agreement"], "export/int8_greedy_match": cmp["greedy_match"]}
        rows = job.rows[: self.quant_eval_n]
        if job.task is not None and rows:
            ids = [chat_prompt_ids(tok, r["question"]) for r in rows]
            acc = {}
            for label, runtime in (("fp32", lm), ("int8", q)):
                outs = runtime.greedy(ids, job.max_new_tokens, eos_ids=eos, pad_id=tok.pad_token_id)
                texts = tok.batch_decode(outs, skip_special_tokens=True)
                acc[label] = sum(bool(job.task.is_correct(r, t)) for r, t in zip(rows, texts)) / len(rows)
            res["task_accuracy"] = {**acc, "n": len(rows)}
            m.update({"export/onnx_accuracy": acc["fp32"], "export/int8_accuracy": acc["int8"],
                      "export/int8_accuracy_delta": acc["int8"] - acc["fp32"]})
        self._write(out, "int8.json", res)
        return m

    @staticmethod
    def _write(out: str, name: str, obj: dict) -> None:
        with open(os.path.join(out, name), "w") as f:
            json.dump(obj, f, indent=2)
