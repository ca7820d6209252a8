"""Curriculum phases from row stages (stratos/distill/curriculum.py) and through the distill loaders."""

from __future__ import annotations

import pytest

from stratos.distill.curriculum import curriculum_phases
from stratos.errors import UserError
from stratos.tasks.base import NO_STAGE, largest_remainder, stage_of


def test_largest_remainder_sums_and_rounds_each_share_down_or_up():
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert largest_remainder(1250, [25000, 25000]) == [625, 625]
    assert largest_remainder(7, [0.5, 0.25, 0.25]) == [3, 2, 2]  # 3.5 / 1.75 / 1.75: the larger remainders win
    assert largest_remainder(13, [5, 0, 2, 9])[1] == 0  # a zero weight gets nothing
    for total, w in [(100, [0.3, 0.3, 0.4]), (13, [5, 0, 2, 9]), (1, [1, 1])]:
        got = largest_remainder(total, w)
        assert sum(got) == total
        assert all(int(total * x / sum(w)) <= g <= int(total * x / sum(w)) + 1 for g, x in zip(got, w))


def test_stage_of_reads_only_non_negative_ints():
    assert stage_of({"curriculum_stage": 2}) == 2
    for bad in ({}, {"curriculum_stage": None}, {"curriculum_stage": True}, {"curriculum_stage": "1"},
                {"curriculum_stage": -3}, {"curriculum_stage": 1.0}):
        assert stage_of(bad) == NO_STAGE


def test_no_curriculum_without_two_stages():
    assert curriculum_phases([NO_STAGE] * 5, 10) is None
    assert curriculum_phases([0, 0, NO_STAGE], 10) is None


def test_phases_follow_the_rows_and_deal_out_unstaged_items():
    stages = [1, 0, 1, 0, 1, 1, NO_STAGE, NO_STAGE, NO_STAGE]  # 2 rows of stage 0, 4 of stage 1, 3 corpus windows
    phases = curriculum_phases(stages, 12)
    assert [b for _, b in phases] == [4, 8]  # steps in proportion to the rows
    (p0, _), (p1, _) = phases
    assert set(p0) == {1, 3, 6} and set(p1) == {0, 2, 4, 5, 7, 8}  # corpus 1 : 2, like the rows


def test_a_stage_without_a_step_is_refused():
    with pytest.raises(UserError, match="'trainer.max_steps': 2 leaves a curriculum stage with no step"):
        curriculum_phases([0] * 10 + [1] + [2] * 10, 2)


def test_a_mahjong_curriculum_trains_its_stages_in_order_through_the_pipeline(tmp_path):
    """task.curriculum -> staged train.jsonl -> the distill loader's phases (with the corpus windows of injection
    dealt out to them), recorded in the distill metrics."""
    import json

    from stratos.checks import validate
    from stratos.pipeline import run_pipeline
    from tests.conftest import compose_cfg

    cfg = compose_cfg(["+task=mahjong", "debug=fast", "task.n_train=96", "task.n_val=16", "task.n_test=16",
                       "trainer.max_steps=6", "trainer.batch_size=8", "trainer.val_every_n_steps=6",
                       "trainer.checkpoint_every_n_steps=6", "strategy=injection", "pipeline.stages=[data,distill]",
                       "task.curriculum=[{share:2},{share:1,wait_distribution:{3:1}}]"], tmp_path)
    validate(cfg)
    done = run_pipeline(cfg, str(tmp_path / "run"))
    rows = [json.loads(x) for x in (tmp_path / "run" / "data" / "train.jsonl").read_text().splitlines()]
    assert [sum(r["curriculum_stage"] == s for r in rows) for s in (0, 1)] == [64, 32]
    m = done["distill"].metrics
    assert (m["distill/curriculum/phase0_steps"], m["distill/curriculum/phase1_steps"]) == (4, 2)
    corpus = m["distill/train/corpus_examples"]
    assert corpus > 0 and m["distill/curriculum/phase0_items"] + m["distill/curriculum/phase1_items"] == 96 + corpus
    assert m["distill/steps"] == 6
