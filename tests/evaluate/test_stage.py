"""Evaluation helpers: grading breakdown, batched greedy generation == one-by-one, latency figures."""

from __future__ import annotations

import torch

from stratos.evaluate.stage import accuracy_by, time_answers
from stratos.models.generate import greedy_generate
from stratos.models.student import load_student

ARCH = {"family": "llama", "hidden": 32, "layers": 2, "heads": 2, "kv_heads": 2, "intermediate": 64,
        "max_position": 128}


def test_accuracy_by_difficulty():
    rows = [{"difficulty": "waits=1"}, {"difficulty": "waits=1"}, {"difficulty": "waits=2"}, {}]
    assert accuracy_by(rows, [True, False, True, False]) == {"all": 0.0, "waits=1": 0.5, "waits=2": 1.0}


def test_batched_left_padded_generation_matches_one_by_one():
    torch.manual_seed(0)
    b = load_student("s", arch=ARCH, tokenizer_vocab=300,
                     train_texts=["Hand: 1m 2m 3m\nAnswer: 4m", "Hand: 1z 1z\nAnswer: none"] * 30)
    qs = ["Hand: 1m 2m 3m", "Hand: 1z", "Hand: 1m 2m 3m 1z 1z 1z 9m"]  # different lengths -> left padding
    batched = greedy_generate(b.model, b.tokenizer, qs, max_new_tokens=8, batch_size=3)
    single = [greedy_generate(b.model, b.tokenizer, [q], max_new_tokens=8, batch_size=1)[0] for q in qs]
    assert batched == single


def test_latency_figures_are_measured():
    b = load_student("s", arch=ARCH, tokenizer_vocab=300, train_texts=["Hand: 1m 2m 3m\nAnswer: 4m"] * 30)
    m = time_answers(b.model, b.tokenizer, ["Hand: 1m", "Hand: 2m", "Hand: 3m"], max_new_tokens=4)
    assert 0 < m["evaluate/latency_ms_p50"] <= m["evaluate/latency_ms_p95"]
    assert m["evaluate/tokens_per_s"] > 0
    assert time_answers(b.model, b.tokenizer, [], max_new_tokens=4) == {}
