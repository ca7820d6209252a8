"""Tiny models, tokenizer and data shared by the ACME tests (single thread: the CPU is shared)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, LlamaConfig

from stratos.acme.backbone import encode, train_tokenizer
from stratos.acme.data import random_hands
from stratos.acme.hf_bert import StratosBertConfig


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tok():
    return train_tokenizer(random_hands(300, np.random.default_rng(0)), 64)


@pytest.fixture(scope="session")
def texts():
    return random_hands(24, np.random.default_rng(1))


def tiny(family: str, vocab: int, seed: int = 0, num_labels: int = 4):
    torch.manual_seed(seed)
    if family == "bert":
        cfg = StratosBertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=32, num_labels=num_labels,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0)
    else:
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=8, intermediate_size=64, max_position_embeddings=32,
                          num_labels=num_labels, pad_token_id=0)
    return AutoModelForSequenceClassification.from_config(cfg).eval()


@pytest.fixture(scope="session")
def make_tiny():
    """tiny(family, vocab, seed=0, num_labels=4) -> an eval-mode sequence classifier."""
    return tiny


@pytest.fixture(params=["bert", "llama"])
def family(request):
    return request.param


@pytest.fixture
def model(family, tok):
    return tiny(family, len(tok))


@pytest.fixture
def enc(tok, texts):
    # uneven lengths: exercises padding (first text cut short)
    return encode(tok, [texts[0][:10], *texts[1:8]], 32)
