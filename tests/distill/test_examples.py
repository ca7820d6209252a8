"""Training examples: loss only on the target, corpus mixing ratio, padding/collation."""

from __future__ import annotations

import torch

from stratos.data.mahjong.task import MahjongTask
from stratos.distill.examples import IGNORE, ExampleDataset, TextExample, collate, corpus_texts, supervised_texts, tokenize
from stratos.distill.strategy import Decision
from stratos.models.teacher import EngineTeacher
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
    seq = Decision("alignment", "sequence", "", 1.0, 5)
    lab = Decision("labels_only", "labels", "", None, 0)
    s, stats = supervised_texts(seq, TASK, ROWS, eng, "rationale", False)
    assert stats["kept"] == len(ROWS) and s[0].target == TASK.rationale(ROWS[0])
    a, _ = supervised_texts(lab, TASK, ROWS, eng, "rationale", False)
    assert a[0].target == TASK.answer_line(ROWS[0]) and "\n" not in a[0].target


def test_corpus_weight_is_the_share_of_examples():
    sup = [TextExample(r["question"], TASK.answer_line(r)) for r in ROWS]
    cor = corpus_texts(TASK, [])
    ds = ExampleDataset(TOK, sup, cor, corpus_weight=0.25, max_len=256, seed=0)
    assert len(ds) == len(sup) + round(len(sup) * 0.25 / 0.75)
    corpus_items = [it for it in ds.items if it[1][0] == IGNORE and it[1][1] != IGNORE]
    assert len(corpus_items) == len(ds) - len(sup)  # corpus text: loss on every token after BOS


def test_collate_pads_right_and_masks():
    batch = collate(TOK.pad_token_id)([([1, 5, 6], [IGNORE, 5, 6]), ([1, 7], [IGNORE, 7])])
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, TOK.pad_token_id]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"][1, 2].item() == IGNORE
    assert batch["labels"].dtype == torch.long
