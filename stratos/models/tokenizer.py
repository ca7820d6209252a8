"""Train a small byte-level BPE tokenizer locally (no downloads) and wrap it for transformers.

Byte-level BPE never produces <unk> (every byte is in the base alphabet), so any text a user
types later still tokenizes. Vocabulary size dominates CPU cost (the LM head and the softmax
are (tokens, V)), so task students use a few hundred entries.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, BOS, EOS]

# A minimal chat template so chat-completions servers (vLLM, Stratos' own) can format requests.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # the byte alphabet + specials: no merges, one token per byte


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with `vocab_size` entries (incl. 3 special tokens) trained on `texts`.

    `vocab_size = MIN_VOCAB` (259) learns no merges: one token per byte, i.e. per character of ASCII text,
    so a compact group `123m` is four tokens (one per tile digit and the suit letter) instead of one.
    """
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size {vocab_size} is below the 256-byte base alphabet + specials ({MIN_VOCAB})")
    tok = Tokenizer(models.BPE())
    # Split on whitespace only (a word keeps its leading space), then map bytes. GPT-2's regex would
    # split letters from digits, so a tile like " 1m" could never become one token.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[^\s]+|\s+"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: str) -> None:
    """save_pretrained, then make the files loadable by transformers 4.x as well as 5.x.

    transformers 5 writes "tokenizer_class": "TokenizersBackend", which 4.x does not know;
    "PreTrainedTokenizerFast" loads in both (measured, see shared NOTES).
    """
    tokenizer.save_pretrained(path)
    cfg_path = os.path.join(path, "tokenizer_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)


def load_tokenizer(path: str):
    """The tokenizer in `path`, exactly as its tokenizer.json says.

    transformers 5's AutoTokenizer swaps in the model type's own class for some types whatever
    tokenizer_config.json declares (e.g. Qwen2Tokenizer for model_type qwen2, which replaces the
    pre-tokenizer: a locally trained BPE then splits " 1m" into 3 tokens instead of 1 — measured).
    A tokenizer declared as the generic fast class is therefore loaded as that class directly.
    """
    from transformers import AutoTokenizer

    cfg_path = os.path.join(path, "tokenizer_config.json")
    declared = None
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            declared = json.load(f).get("tokenizer_class")
    if declared in ("PreTrainedTokenizerFast", "TokenizersBackend") and os.path.exists(
            os.path.join(path, "tokenizer.json")):
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
