"""Pairing preflight: exclusions with reasons, KD mode, notes."""

from __future__ import annotations

from stratos.plan.preflight import check_pair, excluded_list, preflight, prior_accuracy
from stratos.plan.zoo import ModelEntry, Zoo


def model(name, kind="hf", params=1e9, family="qwen2", context=32768, vocab=151936, scores=None, chat=True,
          licence="Apache-2.0"):
    return ModelEntry(name=name, kind=kind, params=params, layers=24, hidden=1024, heads=16, kv_heads=2, vocab=vocab,
                      context=context, tokenizer_family=family, chat_template=chat, licence=licence,
                      prior_scores=scores or {})


def test_same_family_gives_logit_kd_else_sequence():
    t, s = model("t", params=7e9, vocab=152064), model("s", params=0.5e9)
    mode, why, notes = check_pair(t, s, "alignment", "gsm8k", 512)
    assert mode == "logit" and not why and any("embedding rows differ" in n for n in notes)
    mode, why, notes = check_pair(t, model("s2", family="llama3", params=1e9), "alignment", "gsm8k", 512)
    assert mode == "sequence" and not why and any("different tokenizers (qwen2 vs llama3)" in n for n in notes)
    assert check_pair(t, s, "injection", "gsm8k", 512)[0] == "injection"
    assert check_pair(t, s, "labels_only", "gsm8k", 512)[0] == "labels"


def test_exclusions_name_the_reason():
    big, small = model("big", params=7e9), model("small", params=0.5e9)
    assert "not smaller than teacher" in check_pair(small, big, "alignment", "gsm8k", 512)[1][0]
    short = model("short", params=0.1e9, context=256)
    assert "student context 256 < planner.seq_len 512" in check_pair(big, short, "injection", "x", 512)[1]
    engine = model("engine", kind="engine", params=0, family="none", scores={"mahjong": 1.0})
    assert check_pair(engine, small, "alignment", "mahjong", 512)[1] == []
    assert "no answers for task 'gsm8k'" in check_pair(engine, small, "alignment", "gsm8k", 512)[1][0]
    assert check_pair(engine, small, "alignment", "mahjong", 512)[0] == "sequence"  # no logits from an engine
    unsized = model("unsized", params=0)
    assert "params_b is unknown" in check_pair(unsized, small, "injection", "x", 512)[1][0]


def test_notes_for_templates_licences_and_short_teacher_context():
    t = model("t", params=8e9, family="llama3", context=256, licence="Llama 3.1 Community License")
    s = model("s", params=1e9, family="llama3", chat=False)
    mode, why, notes = check_pair(t, s, "alignment", "x", 512)
    assert mode == "logit" and not why
    text = " | ".join(notes)
    assert "logit KD truncated" in text and "no chat template" in text and "binds derivatives" in text


def test_table_and_grouped_exclusions():
    zoo = Zoo([model("t7", params=7e9), model("t0", params=0.3e9)], [model("s5", params=0.5e9, scores={"x": 0.4})])
    p = preflight(zoo, ["alignment", "injection"], "x", 512)
    assert p.ok.shape == (2, 1, 2) and p.ok[0].all() and not p.ok[1].any()
    assert p.mode[0, 0, 0] == "logit" and p.mode[0, 0, 1] == "injection"
    assert p.student_acc[0] == 0.4 and p.teacher_acc[0] == prior_accuracy(zoo.teachers[0], "x")
    ex = excluded_list(zoo, ["alignment", "injection"], p)
    assert len(ex) == 1 and ex[0]["teacher"] == "t0" and ex[0]["strategies"] == ["alignment", "injection"]
    assert len(ex[0]["reasons"]) == 1  # the same reason is listed once for both strategies


def test_api_teacher_logprobs_still_mean_sequence_kd():
    api = model("api", kind="openai", params=0, family="unknown")
    api.top_logprobs = 5
    mode, why, notes = check_pair(api, model("s", params=1e9), "alignment", "x", 512)
    assert mode == "sequence" and not why and "own tokenizer" in notes[0]
