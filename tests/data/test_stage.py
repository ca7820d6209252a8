"""Data stage: every split the task returns is written (Mahjong: a balanced `test` and `test_natural`), no hand in
two splits, stats name each test split's mix, and changing `task.test_distribution` changes the stage's hash."""

from __future__ import annotations

import json

from stratos import artifacts
from stratos.artifacts import StageContext
from stratos.data.outputs import held_out_files
from stratos.data.stage import run
from stratos.pipeline import stage_hash
from tests.conftest import compose_cfg

SMALL = ["+task=mahjong", "task.n_train=30", "task.n_val=5", "task.n_test=30"]


def test_both_test_splits_are_written_disjoint_and_named(tmp_path):
    cfg = compose_cfg(SMALL, tmp_path)
    m = run(cfg, StageContext(run_dir=str(tmp_path), stage="data", config_hash="h", inputs={}))
    assert held_out_files(m.outputs) == [("test", "test.jsonl"), ("test_natural", "test_natural.jsonl")]
    rows = {s: artifacts.read_jsonl(m.path(f"{s}.jsonl")) for s in ("train", "val", "test", "test_natural")}
    hands = [r["hand"] for rs in rows.values() for r in rs]
    assert len(hands) == len(set(hands)) == 30 + 5 + 30 + 30
    assert m.metrics["data/test_natural/n"] == 30
    stats = json.loads((tmp_path / "data" / "stats.json").read_text())
    assert stats["test_distribution"] == {"test": "balanced", "test_natural": "natural"}
    assert list(stats["difficulty"]["test"]) == [f"waits={k}" for k in range(10)]  # 3 each, in reading order
    natural = compose_cfg([*SMALL, "task.test_distribution=natural"], tmp_path)
    assert stage_hash(natural, "data", {}) != stage_hash(cfg, "data", {})  # a new mix re-runs the data stage
