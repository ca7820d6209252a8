"""Evaluate stage: the trained student on the held-out test split, graded by the task's verifier.

Metrics (all computed from model outputs):
  evaluate/test/accuracy, evaluate/test/n     exact answers / items (strict task grading)
  evaluate/test/by_difficulty                 accuracy per difficulty bucket
  evaluate/teacher/accuracy, .../n            the teacher's probe accuracy, read from distill/strategy.json: the
                                              distill stage probed it on `strategy.probe_n` held-out val items
                                              (None when strategy=labels_only did not probe). Not re-run here, so
                                              a new teacher does not re-evaluate the same student.
  evaluate/latency_ms_p50, _p95               one answer at a time (batch 1, greedy, KV cache)
  evaluate/tokens_per_s                       generated tokens per second in that timing
Outputs: predictions.jsonl (question, expected, output, correct), metrics.json.
"""

from __future__ import annotations

import collections
import logging
import time

import numpy as np
import torch
from omegaconf import DictConfig
from transformers import AutoModelForCausalLM

from stratos import artifacts
from stratos.artifacts import Manifest, StageContext
from stratos.data.outputs import TEST_JSONL
from stratos.distill.outputs import MODEL_DIR, STRATEGY_JSON
from stratos.models.generate import greedy_generate
from stratos.models.tokenizer import load_tokenizer
from stratos.tasks import build_task

log = logging.getLogger("stratos")


def load_model(model_dir: str):
    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model.eval(), tok


def accuracy_by(rows: list[dict], correct: list[bool], key: str = "difficulty") -> dict[str, float]:
    groups: dict[str, list[bool]] = collections.defaultdict(list)
    for r, c in zip(rows, correct):
        groups[str(r.get(key, "all"))].append(c)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(groups.items())}


def time_answers(model, tok, questions: list[str], max_new_tokens: int) -> dict[str, float]:
    """Latency of answering one question at a time (what a user of the served model sees)."""
    lat, n_tok = [], 0
    for q in questions:
        t0 = time.perf_counter()
        text = greedy_generate(model, tok, [q], max_new_tokens=max_new_tokens, batch_size=1)[0]
        lat.append((time.perf_counter() - t0) * 1000)
        n_tok += len(tok(text, add_special_tokens=False)["input_ids"]) + 1
    if not lat:
        return {}
    return {"evaluate/latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
            "evaluate/latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
            "evaluate/tokens_per_s": round(n_tok / (sum(lat) / 1000), 1)}


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    task = build_task(cfg.task)
    test_rows = artifacts.read_jsonl(ctx.input("data").path(TEST_JSONL))
    distill = ctx.input("distill")
    model, tok = load_model(artifacts.local_path(distill.path(MODEL_DIR)))
    max_new = int(cfg.evaluate.max_new_tokens) or int(task.max_new_tokens)
    t0 = time.time()
    outputs = greedy_generate(model, tok, [r["question"] for r in test_rows], max_new, int(cfg.evaluate.batch_size))
    gen_s = time.time() - t0
    correct = [task.is_correct(r, o) for r, o in zip(test_rows, outputs)]
    ctx.write_jsonl("predictions.jsonl", [
        {"id": r["id"], "question": r["question"], "expected": r["answer"], "output": o, "correct": c}
        for r, o, c in zip(test_rows, outputs, correct)])

    decision = artifacts.read_json(distill.path(STRATEGY_JSON))
    t_acc, t_n = decision.get("teacher_probe_accuracy"), int(decision.get("probe_n") or 0)

    metrics = {
        "evaluate/test/accuracy": round(sum(correct) / max(1, len(correct)), 4),
        "evaluate/test/n": len(correct),
        "evaluate/test/by_difficulty": accuracy_by(test_rows, correct),
        "evaluate/test/generate_seconds": round(gen_s, 2),
        "evaluate/teacher/accuracy": round(t_acc, 4) if t_acc is not None else None,
        "evaluate/teacher/n": t_n,
        **time_answers(model, tok, [r["question"] for r in test_rows[: int(cfg.evaluate.n_latency)]], max_new),
    }
    ctx.write_json("metrics.json", metrics)
    log.info("evaluate: student accuracy %.3f on %d test items; teacher probe %s on %d val items",
             metrics["evaluate/test/accuracy"], len(correct), "n/a" if t_acc is None else f"{t_acc:.3f}", t_n)
    return ctx.manifest(metrics=metrics)
