from __future__ import annotations

import pytest
import torch

from stratos.errors import UserError
from stratos.models.student import load_student

ARCH = {"family": "llama", "hidden": 32, "layers": 2, "heads": 2, "kv_heads": 2, "intermediate": 64,
        "max_position": 128}
TEXTS = ["Hand: 1m 2m 3m 4m\nAnswer: 5m"] * 20


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_from_config_each_family(family):
    b = load_student("s", arch={**ARCH, "family": family}, tokenizer_vocab=280, train_texts=TEXTS)
    assert b.model.config.vocab_size == len(b.tokenizer) <= 280
    out = b.model(torch.tensor([[1, 5, 6]]))
    assert out.logits.shape == (1, 3, len(b.tokenizer))


def test_lora_trains_only_adapters_and_merges_exactly(tmp_path):
    b = load_student("s", arch=ARCH, tokenizer_vocab=280, train_texts=TEXTS,
                     peft={"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    assert 0 < b.n_trainable < b.n_params
    for n, p in b.model.named_parameters():  # perturb adapters so the merge is not trivially the base model
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    x = torch.tensor([[1, 7, 9, 11]])
    before = b.model(x).logits
    merged = b.merged()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(x).logits, before, atol=1e-5, rtol=0)


def test_lora_bad_target_module_is_user_error():
    with pytest.raises(UserError, match="student.peft.target_modules"):
        load_student("s", arch=ARCH, tokenizer_vocab=280, train_texts=TEXTS,
                     peft={"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["nope_proj"]})


def test_unknown_family_is_user_error():
    with pytest.raises(UserError, match="student.arch.family"):
        load_student("s", arch={**ARCH, "family": "mamba"}, tokenizer_vocab=280, train_texts=TEXTS)


def test_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(UserError, match=r"student.name_or_path.*Qwen/Qwen2.5-0.5B.*download"):
        load_student("qwen", name_or_path="Qwen/Qwen2.5-0.5B")
    with pytest.raises(UserError, match="student.name_or_path"):
        load_student("p", name_or_path=str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no loadable model"):
        load_student("p", name_or_path=str(tmp_path))  # a directory without a checkpoint


def test_saved_student_loads_by_path(tmp_path):
    from stratos.models.tokenizer import save_tokenizer

    b = load_student("s", arch=ARCH, tokenizer_vocab=280, train_texts=TEXTS)
    b.model.save_pretrained(tmp_path)
    save_tokenizer(b.tokenizer, tmp_path)
    again = load_student("s2", name_or_path=str(tmp_path))
    x = torch.tensor([[1, 7, 9]])
    torch.testing.assert_close(again.model(x).logits, b.model(x).logits)
