"""Evaluation helpers: grading breakdown, batched greedy generation == one-by-one, latency figures."""

from __future__ import annotations

import torch

from stratos.evaluate.stage import accuracy_by, count_by, time_answers
from stratos.models.generate import greedy_generate
from stratos.models.student import load_student

ARCH = {"family": "llama", "hidden": 32, "layers": 2, "heads": 2, "kv_heads": 2, "intermediate": 64,
        "max_position": 128}


def test_accuracy_by_difficulty():
    rows = [{"difficulty": "waits=1"}, {"difficulty": "waits=1"}, {"difficulty": "waits=2"}, {}]
    assert accuracy_by(rows, [True, False, True, False]) == {"all": 0.0, "waits=1": 0.5, "waits=2": 1.0}
    rows += [{"difficulty": "waits=13"}]  # numbers in reading order
    assert list(count_by(rows).items()) == [("all", 1), ("waits=1", 2), ("waits=2", 1), ("waits=13", 1)]


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
    # answers of at most 4 new tokens, plus the end of sequence counted as one
    assert 1 <= m["evaluate/tokens_per_answer"] <= 5 and m["evaluate/ms_per_token_p50"] > 0
    assert time_answers(b.model, b.tokenizer, [], max_new_tokens=4) == {}


def test_the_planner_reads_the_median_answers_ms_per_token_over_the_mean():
    from stratos.artifacts import Manifest
    from stratos.plan.record import measured_for_ledger

    def done(ev):
        return {"distill": Manifest(stage="distill", config_hash="d", metrics={"strategy/name": "alignment"}),
                "evaluate": Manifest(stage="evaluate", config_hash="e", metrics=ev)}

    got = measured_for_ledger(done({"evaluate/tokens_per_s": 100.0, "evaluate/ms_per_token_p50": 2.5,
                                    "evaluate/tokens_per_answer": 7.0}))
    assert got["latency_ms_per_token"] == 2.5 and got["tokens_per_answer"] == 7.0
    # an evaluation written before the median was kept: the mean rate
    assert measured_for_ledger(done({"evaluate/tokens_per_s": 100.0}))["latency_ms_per_token"] == 10.0


def test_the_teacher_figure_comes_from_the_distill_decision_without_building_a_teacher(tmp_path):
    """evaluate reads distill/strategy.json: the teacher is never built (here it could not be: a dead
    endpoint), and a different teacher config does not change the evaluate stage's hash."""
    from stratos import artifacts
    from stratos.artifacts import Manifest, StageContext
    from stratos.evaluate.stage import run
    from stratos.models.tokenizer import save_tokenizer
    from stratos.pipeline import stage_hash
    from stratos.tasks.mahjong.task import MahjongTask
    from tests.conftest import compose_cfg

    splits = MahjongTask(n_train=4, n_val=2, n_test=3, seed=0).build_splits()
    rows, natural = splits["test"], splits["test_natural"]
    b = load_student("s", arch=ARCH, tokenizer_vocab=300, train_texts=[r["question"] for r in rows] * 10)
    model_dir = tmp_path / "distill" / "model"
    b.model.save_pretrained(model_dir)
    save_tokenizer(b.tokenizer, str(model_dir))
    strategy = artifacts.write_json(str(tmp_path / "distill" / "strategy.json"),
                                    {"name": "alignment", "mode": "sequence", "teacher_probe_accuracy": 0.875,
                                     "probe_n": 8})
    test = artifacts.write_jsonl(str(tmp_path / "data" / "test.jsonl"), rows)
    test_nat = artifacts.write_jsonl(str(tmp_path / "data" / "test_natural.jsonl"), natural)
    inputs = {"data": Manifest("data", "d", outputs={"test.jsonl": test, "test_natural.jsonl": test_nat}),
              "distill": Manifest("distill", "s", outputs={"model": str(model_dir), "strategy.json": strategy})}
    cfg = compose_cfg(["+task=mahjong", "teacher=openai_endpoint", "teacher.base_url=http://127.0.0.1:9/v1",
                       "teacher.model=x", "evaluate.n_latency=1", "evaluate.max_new_tokens=4"], tmp_path)
    m = run(cfg, StageContext(run_dir=str(tmp_path), stage="evaluate", config_hash="h", inputs=inputs))
    assert m.metrics["evaluate/teacher/accuracy"] == 0.875 and m.metrics["evaluate/teacher/n"] == 8
    assert m.metrics["evaluate/test/n"] == 3
    # the extra test split is scored beside the headline one, with items and accuracy per difficulty
    for split, split_rows in (("test", rows), ("test_natural", natural)):
        n_by = m.metrics[f"evaluate/{split}/n_by_difficulty"]
        assert n_by == count_by(split_rows) and sum(n_by.values()) == 3 == m.metrics[f"evaluate/{split}/n"]
        assert set(m.metrics[f"evaluate/{split}/by_difficulty"]) == set(n_by)
    assert (tmp_path / "evaluate" / "predictions_test_natural.jsonl").exists()
    other = compose_cfg(["+task=mahjong", "teacher=task_engine", "evaluate.n_latency=1", "evaluate.max_new_tokens=4"],
                        tmp_path)
    assert stage_hash(cfg, "evaluate", inputs) == stage_hash(other, "evaluate", inputs)
