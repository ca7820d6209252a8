"""benchmarks/cross_tokenizer.py: every condition composes into the run it says it is."""

from __future__ import annotations

from benchmarks import cross_tokenizer as B
from tests.conftest import compose_cfg

WANT = {  # condition -> (mode, kd_weight, temperature, uld_over, student tokenizer, on-policy rate)
    "xtok": ("auto", 0.5, 2.0, "full", "train", 0.0),
    "sequence": ("sequence", 0.5, 2.0, "full", "train", 0.0),
    "rationales": ("cross_tokenizer", 0.0, 2.0, "full", "train", 0.0),
    "xtok_t1": ("auto", 0.5, 1.0, "full", "train", 0.0),
    "xtok_unmatched": ("auto", 0.5, 2.0, "unmatched", "train", 0.0),
    "xtok_no_uld": ("auto", 0.5, 2.0, "full", "train", 0.0),
    "xtok_on_policy": ("auto", 0.5, 2.0, "full", "train", 0.5),
    "same_vocab_logit": ("logit", 0.5, 2.0, "full", "teacher", 0.0),
    "same_vocab_rationales": ("logit", 0.0, 2.0, "full", "teacher", 0.0),
}


def test_each_condition_composes_into_the_run_it_describes(tmp_path):
    a = B.argparse.Namespace(n_train=64, n_val=8, n_test=8, threads=1, out=str(tmp_path))
    base = [*B.common(a, 10, 8), "teacher=tiny_teacher", "teacher.name_or_path=/some/teacher", "strategy=alignment",
            *B.STUDENT, "student.tokenizer_vocab=448"]
    assert set(B.CONDITIONS) == set(WANT) and set(B.DEFAULT) <= set(WANT)
    for cond, want in WANT.items():
        cfg = compose_cfg([*base, *B.student_tokenizer(cond), *B.CONDITIONS[cond]], tmp_path)
        al = cfg.strategy.alignment
        got = (al.mode, al.kd_weight, al.temperature, al.cross_tokenizer.uld_over, cfg.student.tokenizer_from,
               al.on_policy.rate)
        assert got == want and cfg.strategy.name == "alignment", cond
        assert cfg.trainer.max_steps == 10 and list(cfg.pipeline.stages) == ["data", "distill", "evaluate"]
