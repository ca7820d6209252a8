"""benchmarks/multi_teacher.py: every condition and both teacher runs compose into the runs they describe."""

from __future__ import annotations

from benchmarks import multi_teacher as B
from stratos.models.teachers import validate_teachers
from tests.conftest import compose_cfg

WANT = {  # condition -> (teacher ids, route.by, route.slices, single teacher path, kd_weight)
    "routed_auto": (["low", "high"], "auto", {}, None, 0.5),
    "routed_slice": (["low", "high"], "slice", {"0-2": "low", "3+": "high"}, None, 0.5),
    "low_only": ([], "auto", {}, "LOW", 0.5),
    "high_only": ([], "auto", {}, "HIGH", 0.5),
    "no_kd": ([], "auto", {}, "LOW", 0.0),
}


def test_each_condition_composes_into_the_run_it_describes(tmp_path):
    a = B.argparse.Namespace(n_train=64, n_val=8, n_test=8, threads=1, out=str(tmp_path))
    low, high = tmp_path / "low", tmp_path / "high"
    low.mkdir(), high.mkdir()
    paths = {"LOW": str(low), "HIGH": str(high)}
    base = [*B.common(a, 10, 8), *B.STUDENT, *B.STUDENT_DATA, "strategy=alignment"]
    assert set(B.CONDITIONS) == set(WANT) and set(B.DEFAULT) <= set(WANT)
    for cond, (ids, by, slices, single, kd) in WANT.items():
        cfg = compose_cfg([*base, *B.condition(cond, str(low), str(high), 3)], tmp_path)
        validate_teachers(cfg)  # the route names only listed teachers
        assert list(cfg.teachers) == ids and cfg.route.by == by, cond
        assert {str(k): v for k, v in cfg.route.slices.items()} == slices, cond
        assert [cfg.teachers[t].name_or_path for t in ids] == [str(low), str(high)][: len(ids)], cond
        if single:
            assert cfg.teacher.name_or_path == paths[single], cond
        assert cfg.strategy.alignment.kd_weight == kd and cfg.strategy.name == "alignment", cond
        assert cfg.task.nontenpai_rate == 0.15 and set(cfg.task.wait_distribution) == {str(k) for k in range(1, 8)}
        assert cfg.trainer.max_steps == 10 and list(cfg.pipeline.stages) == ["data", "distill", "evaluate"]
    assert B.condition("routed_auto", "x", "y", 3)[-1] == "route.probe_n=3"


def test_each_teacher_trains_on_its_own_slice_and_high_takes_lows_tokenizer(tmp_path):
    a = B.argparse.Namespace(n_train=64, n_val=8, n_test=8, threads=1, out=str(tmp_path), teacher_steps=10,
                             teacher_batch=8)
    low = compose_cfg(B.teacher_overrides(a, "low"), tmp_path)
    assert low.strategy.name == "injection" and low.strategy.injection.corpus_weight == 0
    assert low.task.nontenpai_rate == 0.3 and set(low.task.wait_distribution) == {"1", "2"}
    (tmp_path / "low_model").mkdir()
    high = compose_cfg(B.teacher_overrides(a, "high", str(tmp_path / "low_model")), tmp_path)
    assert high.task.nontenpai_rate == 0 and set(high.task.wait_distribution) == {"3", "4", "5", "6", "7"}
    assert high.teacher.name_or_path == str(tmp_path / "low_model") and high.strategy.alignment.kd_weight == 0
    assert high.student.tokenizer_from == "teacher" and high.strategy.alignment.mode == "logit"


def test_slice_accuracy_weights_wait_counts_by_their_items():
    ev = {"evaluate/test/by_difficulty": {"waits=0": 1.0, "waits=2": 0.5, "waits=3": 0.25, "waits=9": 0.0},
          "evaluate/test/n_by_difficulty": {"waits=0": 2, "waits=2": 2, "waits=3": 4, "waits=9": 4}}
    assert B.slice_accuracy(ev) == {"low": 0.75, "high": 0.125}
