"""Strategy decision: probe accuracy drives alignment vs injection; white-box needs logits + same vocab."""

from __future__ import annotations

import pytest

from stratos.tasks.mahjong.task import MahjongTask
from stratos.distill.strategy import Strategy
from stratos.models.teacher import EngineTeacher, TeacherAnswer


@pytest.fixture(scope="module")
def task_rows():
    task = MahjongTask(n_train=40, n_val=30, n_test=10, seed=3)
    return task, task.build_splits()["val"]


class WrongTeacher:
    """A real (if hopeless) teacher: always answers that nothing wins."""

    name, kind, capabilities = "wrong", "openai", frozenset({"text"})

    def answer(self, task, rows, rules_in_prompt=False):
        return [TeacherAnswer("Answer: none") for _ in rows]


class WhiteBox(EngineTeacher):
    capabilities = frozenset({"text", "logits", "hidden"})


def test_auto_picks_alignment_when_teacher_knows(task_rows):
    task, rows = task_rows
    d = Strategy("auto", probe_n=20, probe_threshold=0.6).decide(EngineTeacher("eng"), task, rows, False, "text only")
    assert (d.name, d.mode) == ("alignment", "sequence")
    assert d.teacher_probe_accuracy == 1.0 and d.probe_n == 20
    assert ">= threshold 0.60" in d.reason and "n_waits" in d.features


def test_auto_picks_injection_when_teacher_does_not_know(task_rows):
    task, rows = task_rows
    d = Strategy("auto", probe_n=20, probe_threshold=0.6).decide(WrongTeacher(), task, rows, False, "text only")
    assert d.name == "injection" and d.mode == "injection"
    # a "none" answer is right only for non-tenpai hands
    expected = sum(r["n_waits"] == 0 for r in rows[:20]) / 20
    assert d.teacher_probe_accuracy == pytest.approx(expected)
    assert "< threshold" in d.reason


def test_white_box_same_vocab_gives_logit_kd(task_rows):
    task, rows = task_rows
    d = Strategy("alignment", probe_n=5).decide(WhiteBox("wb"), task, rows, True, "identical")
    assert d.mode == "logit" and not d.refused


def test_logit_kd_refused_across_vocabularies(task_rows):
    task, rows = task_rows
    s = Strategy("alignment", probe_n=5, alignment={"mode": "logit"})
    d = s.decide(WhiteBox("wb"), task, rows, False, "different vocabularies (student 384 vs teacher 151k tokens)")
    assert d.mode == "sequence"
    assert d.refused and "logit KD refused: different vocabularies" in d.refused[0]


def test_labels_only_skips_the_probe(task_rows):
    task, rows = task_rows
    d = Strategy("labels_only").decide(WrongTeacher(), task, rows, False, "")
    assert (d.name, d.mode, d.teacher_probe_accuracy) == ("labels_only", "labels", None)


XTOK = "different vocabularies (student 320 vs teacher 384 tokens, 290 shared): cross-tokenizer logit KD (...)"


@pytest.mark.parametrize("name, wanted, mode, refused", [
    ("auto", "auto", "cross_tokenizer", ""),
    ("alignment", "logit", "cross_tokenizer", ""),
    ("alignment", "cross_tokenizer", "cross_tokenizer", ""),
    ("alignment", "hidden", "cross_tokenizer", "hidden KD refused: different vocabularies (student 320"),
    ("alignment", "sequence", "sequence", ""),
])
def test_another_vocabulary_gets_cross_tokenizer_logit_kd(task_rows, name, wanted, mode, refused):
    task, rows = task_rows
    s = Strategy(name, probe_n=5, probe_threshold=0.6, alignment={"mode": wanted})
    d = s.decide(WhiteBox("wb"), task, rows, False, XTOK, cross_tokenizer=True)
    assert (d.name, d.mode) == ("alignment", mode)
    assert (d.refused[0].startswith(refused) if refused else not d.refused), d.refused
    if mode == "cross_tokenizer":
        assert "mode cross_tokenizer (different vocabularies" in d.reason and "cross-tokenizer logit KD" in d.reason


def test_cross_tokenizer_kd_needs_logits_and_alignable_tokenizers(task_rows):
    task, rows = task_rows
    s = Strategy("alignment", probe_n=5, alignment={"mode": "cross_tokenizer"})
    d = s.decide(EngineTeacher("eng"), task, rows, False, "text only", cross_tokenizer=True)  # no logits
    assert d.mode == "sequence" and d.refused[0].startswith("cross_tokenizer KD refused: teacher offers text only")
    d = s.decide(WhiteBox("wb"), task, rows, False, "slow tokenizer", cross_tokenizer=False)
    assert d.mode == "sequence" and "refused: slow tokenizer" in d.refused[0]


def test_preflight_reports_cross_tokenizer_logit_kd_instead_of_refusing():
    from stratos.distill.preflight import logit_kd_route
    from stratos.models.tokenizer import train_tokenizer

    texts = ["1m 2m 3m 4p 5p wins on 3m"] * 20
    a, b = train_tokenizer(texts, 270), train_tokenizer(texts, 290)
    assert logit_kd_route(a, a)[:3] == (True, "identical vocabularies (270 tokens)", "logit KD")
    same, why, kind, shared = logit_kd_route(a, b)
    assert (same, kind) == (False, "cross-tokenizer logit KD") and 260 <= shared <= 270
    assert why.startswith(f"different vocabularies (student 270 vs teacher {len(b)} tokens, {shared} shared): "
                          "cross-tokenizer logit KD")
    slow = type("Slow", (), {"is_fast": False, "get_vocab": lambda self: {}, "__len__": lambda self: 3})()
    same, why, kind, _ = logit_kd_route(a, slow)
    assert kind == "none" and "logit KD refused: a slow tokenizer" in why
