from __future__ import annotations

import json

import pytest

from transformers import AutoTokenizer

from stratos.models.tokenizer import BOS, EOS, PAD, save_tokenizer, train_tokenizer

TEXTS = ["Hand: 1m 1m 1m 2m 3m 4m 5m 6m 7m 8m 9m 9m 9m\nWinning tiles?", "Answer: 1m 4m 7m"] * 50


def test_train_small_vocab_round_trip(tmp_path):
    tok = train_tokenizer(TEXTS, vocab_size=300)
    assert len(tok) <= 300
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS, EOS, PAD)
    text = "Hand: 9m 1z 7z ünïcode 🀄"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level: never <unk>, exact round trip
    save_tokenizer(tok, tmp_path)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"  # loads in transformers 4.x too
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.chat_template


def test_tiles_become_single_tokens():
    tok = train_tokenizer(TEXTS, vocab_size=384)
    ids = tok(" 1m 2m 3m", add_special_tokens=False)["input_ids"]
    assert len(ids) == 3


def test_the_smallest_vocabulary_is_one_token_per_byte():
    tok = train_tokenizer(TEXTS, vocab_size=259)
    assert len(tok) == 259
    text = "1m: 111m 123m 456m 789m 99m"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode()) and tok.decode(ids) == text
    with pytest.raises(ValueError, match="259"):
        train_tokenizer(TEXTS, vocab_size=258)
