"""Training examples: loss only on the target, corpus windows and mixing ratio, padding/collation."""

from __future__ import annotations

import pytest
import torch

from stratos.distill.examples import (IGNORE, ExampleDataset, Item, TextExample, WithIndex, collate, corpus_texts,
                                      corpus_windows, supervised_texts, tokenize)
from stratos.distill.recipe import TextSource, text_source
from stratos.distill.strategy import Mode
from stratos.errors import UserError
from stratos.models.teacher import EngineTeacher
from stratos.tasks.mahjong.task import MahjongTask
from stratos.models.tokenizer import train_tokenizer

TASK = MahjongTask(n_train=30, n_val=5, n_test=5, seed=1)
ROWS = TASK.build_splits()["train"]
TOK = train_tokenizer([r["question"] + "\n" + r["rationale"] for r in ROWS] + [TASK.corpus()], 384)


def test_loss_only_on_target_tokens():
    ex = TextExample(ROWS[0]["question"], TASK.rationale(ROWS[0]))
    ids, labels = tokenize(TOK, ex, max_len=512)
    n_prompt = sum(1 for x in labels if x == IGNORE)
    assert ids[0] == TOK.bos_token_id and labels[-1] == TOK.eos_token_id
    assert TOK.decode(ids[1:n_prompt]) == ROWS[0]["question"] + "\n"
    assert TOK.decode([x for x in labels if x != IGNORE], skip_special_tokens=True) == ex.target


def test_target_kinds():
    eng = EngineTeacher("eng")
    s, stats = supervised_texts(TextSource.teacher, TASK, ROWS, eng, False)
    assert stats["kept"] == len(ROWS) and s[0].target == TASK.rationale(ROWS[0])
    a, _ = supervised_texts(TextSource.answer, TASK, ROWS, eng, False)
    assert a[0].target == TASK.answer_line(ROWS[0]) and "\n" not in a[0].target


def test_verified_targets_are_the_rationales_the_data_stage_wrote():
    rows = [dict(r) for r in ROWS[:3]]
    rows[0]["rationale"] = "As written by the data stage.\nAnswer: none"
    del rows[1]["rationale"]  # user data without a solution: the task writes one
    v, _ = supervised_texts(TextSource.verified, TASK, rows, None, False)
    assert v[0].target == "As written by the data stage.\nAnswer: none"
    assert v[1].target == TASK.rationale(ROWS[1]) and v[2].target == ROWS[2]["rationale"]


@pytest.mark.parametrize("mode,target,source", [
    (Mode.logit, "rationale", TextSource.verified), (Mode.hidden, "rationale", TextSource.verified),
    (Mode.injection, "rationale", TextSource.verified), (Mode.sequence, "rationale", TextSource.teacher),
    (Mode.labels, "rationale", TextSource.answer), (Mode.sequence, "answer", TextSource.answer),
])
def test_each_mode_has_one_text_source(mode, target, source):
    assert text_source(mode, target) == source


def test_corpus_windows_cover_each_document_once_and_fit_the_window():
    docs = corpus_texts(TASK, [])
    wins = corpus_windows(TOK, docs, window=40)
    assert all(len(ids) <= 40 and ids[0] == TOK.bos_token_id for ids, _ in wins)
    assert all(lab[0] == IGNORE and lab[1:] == ids[1:] for ids, lab in wins)  # LM loss on every token after BOS
    text = TOK.decode(sum((ids[1:] for ids, _ in wins), []), skip_special_tokens=True)
    assert text == TOK.decode(TOK(docs[0].target, add_special_tokens=False)["input_ids"])  # nothing lost or doubled
    # short paragraphs are never cut: every later window starts at a paragraph break
    doc = TextExample("", "\n\n".join(f"Rule {i}: a pung is three equal tiles." for i in range(12)))
    short = corpus_windows(TOK, [doc], window=40)
    assert len(short) > 2 and all(TOK.decode(ids[1:]).startswith("\n\nRule") for ids, _ in short[1:])


def test_corpus_weight_is_the_share_of_rows_and_windows_stay_short():
    sup = [TextExample(r["question"], TASK.answer_line(r)) for r in ROWS]
    ds = ExampleDataset(TOK, sup, corpus_texts(TASK, []), corpus_weight=0.25, max_len=256, seed=0)
    assert len(ds) == len(sup) + round(len(sup) * 0.25 / 0.75) and ds.n_corpus == len(ds) - len(sup)
    sup_lengths = sorted(len(x.input_ids) for x in ds.items if not x.is_corpus)
    p90 = sup_lengths[int(0.9 * (len(sup_lengths) - 1))]
    assert max(len(x.input_ids) for x in ds.items if x.is_corpus) == p90 < sup_lengths[-1]  # the 90th percentile
    assert ds.max_len == sup_lengths[-1]
    fixed = ExampleDataset(TOK, sup, corpus_texts(TASK, []), corpus_weight=0.25, max_len=256, seed=0, corpus_window=64)
    assert max(len(x.input_ids) for x in fixed.items if x.is_corpus) == 64


def test_user_corpus_paths_are_read_and_a_missing_one_is_refused(tmp_path):
    (tmp_path / "house_rules.txt").write_text("Red fives count as dora.\n\nNo open tanyao.")
    docs = corpus_texts(TASK, [str(tmp_path / "*.txt")])
    assert len(docs) == 2 and "Red fives" in docs[1].target
    with pytest.raises(UserError, match="strategy.injection.corpus_paths.*matches no file"):
        corpus_texts(TASK, [str(tmp_path / "missing/*.md")])


def test_collate_flags_corpus_rows_and_passes_indices():
    ds = ExampleDataset.from_items([([1, 5, 6], [IGNORE, 5, 6]), ([1, 7], [IGNORE, 7])])
    ds.items[1] = ds.items[1]._replace(is_corpus=True)
    batch = collate(0)([ds[0], ds[1]])
    assert batch["is_corpus"].tolist() == [False, True] and "index" not in batch
    batch = collate(0)([WithIndex(ds)[1], WithIndex(ds)[0]])
    assert batch["index"].tolist() == [1, 0] and batch["is_corpus"].tolist() == [True, False]
    assert Item(*ds[0]).index == -1


def test_collate_pads_right_and_masks():
    batch = collate(TOK.pad_token_id)([([1, 5, 6], [IGNORE, 5, 6]), ([1, 7], [IGNORE, 7])])
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, TOK.pad_token_id]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"][1, 2].item() == IGNORE
    assert batch["labels"].dtype == torch.long
