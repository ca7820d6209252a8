"""Evaluate stage: the trained student on the held-out test split(s), graded by the task's verifier.

Scores `test` (the headline) and every extra test split the data stage wrote (test_<label>.jsonl, e.g.
Mahjong's `test_natural` beside a balanced `test`), each under its own split name.
Metrics (all computed from model outputs; SPLIT = test, test_natural, ...):
  evaluate/SPLIT/accuracy, evaluate/SPLIT/n   exact answers / items (strict task grading)
  evaluate/SPLIT/by_difficulty                accuracy per difficulty bucket (Mahjong: "waits=N")
  evaluate/SPLIT/n_by_difficulty              items per difficulty bucket
  evaluate/SPLIT/generate_seconds             batched generation time
  evaluate/SPLIT/samples, .../vote_share       with evaluate.samples = k > 1 (answers by k-sample majority vote,
                                              stratos/evaluate/vote.py): k, and the winning answer's mean share
  evaluate/teacher/accuracy, .../n            the teacher's probe accuracy, read from distill/strategy.json: the
                                              distill stage probed it on `strategy.probe_n` held-out val items
                                              (None when strategy=labels_only did not probe). Not re-run here, so
                                              a new teacher does not re-evaluate the same student.
  evaluate/latency_ms_p50, _p95               one answer at a time (batch 1, greedy, KV cache)
  evaluate/tokens_per_s                       generated tokens per second in that timing
Outputs: predictions.jsonl (test), predictions_<SPLIT>.jsonl (extra splits; question, expected, output,
correct), metrics.json.
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
from stratos.data.outputs import held_out_files
from stratos.distill.outputs import MODEL_DIR, STRATEGY_JSON
from stratos.evaluate.vote import Vote, vote
from stratos.models.generate import greedy_generate, sampled_generate
from stratos.models.tokenizer import load_tokenizer
from stratos.tasks import bucket_order, build_task

log = logging.getLogger("stratos")


def load_model(model_dir: str):
    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model.eval(), tok


def _groups(rows: list[dict], correct: list[bool], key: str) -> dict[str, list[bool]]:
    groups: dict[str, list[bool]] = collections.defaultdict(list)
    for r, c in zip(rows, correct):
        groups[str(r.get(key, "all"))].append(c)
    return {k: groups[k] for k in bucket_order(groups)}


def accuracy_by(rows: list[dict], correct: list[bool], key: str = "difficulty") -> dict[str, float]:
    return {k: round(sum(v) / len(v), 4) for k, v in _groups(rows, correct, key).items()}


def count_by(rows: list[dict], key: str = "difficulty") -> dict[str, int]:
    return {k: len(v) for k, v in _groups(rows, [False] * len(rows), key).items()}


def answer(task, model, tok, questions: list[str], max_new: int, batch_size: int, samples: int = 1,
           temperature: float = 1.0, seed: int = 0) -> tuple[list[str], list[Vote] | None]:
    """The student's answer text per question: greedy (samples 1), or the majority of `samples` sampled
    completions (stratos/evaluate/vote.py), with the votes."""
    if samples <= 1:
        return greedy_generate(model, tok, questions, max_new, batch_size), None
    drawn = sampled_generate(model, tok, questions, max_new, samples, temperature, seed, batch_size)
    votes = [vote(s, task.extract) for s in drawn]
    return [v.text if v.text is not None else s[0] for v, s in zip(votes, drawn)], votes


def score_split(task, model, tok, rows: list[dict], split: str, max_new: int, batch_size: int,
                ctx: StageContext, samples: int = 1, temperature: float = 1.0, seed: int = 0) -> dict:
    """Generate and grade one test split; writes its predictions file and returns its metrics."""
    t0 = time.time()
    outputs, votes = answer(task, model, tok, [r["question"] for r in rows], max_new, batch_size, samples,
                            temperature, seed)
    gen_s = time.time() - t0
    correct = [task.is_correct(r, o) for r, o in zip(rows, outputs)]
    preds = [{"id": r["id"], "question": r["question"], "expected": r["answer"], "output": o, "correct": c}
             for r, o, c in zip(rows, outputs, correct)]
    for p, v in zip(preds, votes or []):
        p.update(votes=v.count, samples=v.k)
    ctx.write_jsonl("predictions.jsonl" if split == "test" else f"predictions_{split}.jsonl", preds)
    out = {f"evaluate/{split}/accuracy": round(sum(correct) / max(1, len(correct)), 4),
           f"evaluate/{split}/n": len(correct),
           f"evaluate/{split}/by_difficulty": accuracy_by(rows, correct),
           f"evaluate/{split}/n_by_difficulty": count_by(rows),
           f"evaluate/{split}/generate_seconds": round(gen_s, 2)}
    if votes:  # how much the k samples agreed: the winning answer's share of them, averaged over questions
        out[f"evaluate/{split}/samples"] = samples
        out[f"evaluate/{split}/vote_share"] = round(sum(v.count / v.k for v in votes) / len(votes), 4)
    return out


def time_answers(model, tok, questions: list[str], max_new_tokens: int) -> dict[str, float]:
    """Latency of answering one question at a time (what a user of the served model sees)."""
    lat, toks = [], []
    for q in questions:
        t0 = time.perf_counter()
        text = greedy_generate(model, tok, [q], max_new_tokens=max_new_tokens, batch_size=1)[0]
        lat.append((time.perf_counter() - t0) * 1000)
        toks.append(len(tok(text, add_special_tokens=False)["input_ids"]) + 1)
    if not lat:
        return {}
    n_tok = sum(toks)
    return {"evaluate/latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
            "evaluate/latency_ms_p95": round(float(np.percentile(lat, 95)), 2),
            "evaluate/tokens_per_s": round(n_tok / (sum(lat) / 1000), 1),
            # the median answer's ms per token: what the planner calibrates on; one answer stalled by another
            # process on a shared machine moves the mean, not the median
            "evaluate/ms_per_token_p50": round(float(np.median(np.array(lat) / np.array(toks))), 4),
            # per-token latency includes each answer's prompt processing spread over its length, so the planner
            # compares it with its estimate at this length, not at the task's typical one
            "evaluate/tokens_per_answer": round(float(np.median(toks)), 2)}


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    task = build_task(cfg.task)
    data = ctx.input("data")
    splits = {split: artifacts.read_jsonl(data.path(name)) for split, name in held_out_files(data.outputs)}
    test_rows = splits["test"]
    distill = ctx.input("distill")
    model, tok = load_model(artifacts.local_path(distill.path(MODEL_DIR)))
    max_new = int(cfg.evaluate.max_new_tokens) or int(task.max_new_tokens)
    scores: dict = {}
    for split, rows in splits.items():
        scores.update(score_split(task, model, tok, rows, split, max_new, int(cfg.evaluate.batch_size), ctx,
                                  int(cfg.evaluate.samples), float(cfg.evaluate.temperature), int(cfg.seed)))

    decision = artifacts.read_json(distill.path(STRATEGY_JSON))
    t_acc, t_n = decision.get("teacher_probe_accuracy"), int(decision.get("probe_n") or 0)

    metrics = {
        **scores,
        "evaluate/teacher/accuracy": round(t_acc, 4) if t_acc is not None else None,
        "evaluate/teacher/n": t_n,
        **time_answers(model, tok, [r["question"] for r in test_rows[: int(cfg.evaluate.n_latency)]], max_new),
    }
    ctx.write_json("metrics.json", metrics)
    log.info("evaluate: student accuracy %s; teacher probe %s on %d val items",
             "; ".join(f"{metrics[f'evaluate/{s}/accuracy']:.3f} on {len(r)} {s} items" for s, r in splits.items()),
             "n/a" if t_acc is None else f"{t_acc:.3f}", t_n)
    return ctx.manifest(metrics=metrics)
