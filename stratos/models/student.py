"""Students: a tiny causal LM built from config (offline default) or a pretrained one by name/path.

`conf/student/*.yaml` targets `load_student`; the distill stage instantiates it with the task's
training texts (used only to train the tokenizer of a from-config student):

    bundle = hydra.utils.instantiate(cfg.student, train_texts=texts, _convert_="object")
    bundle.model, bundle.tokenizer

LoRA (PEFT) is applied here when `peft.method == "lora"`; `merged()` folds adapters back in for export.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

from stratos.config import StudentConfig
from stratos.errors import UserError

# torch and transformers are imported where a model is built: `validate_student` below runs on every CLI
# start (stratos/checks.py), and a bad value elsewhere must be refused in a second.

FAMILIES = ("llama", "qwen2", "gpt2")
TOKENIZER_FROM = ("auto", "teacher", "train")


@dataclass
class StudentBundle:
    name: str
    model: Any  # PreTrainedModel or peft.PeftModel
    tokenizer: Any
    tokenizer_family: str
    peft_method: str

    def merged(self) -> PreTrainedModel:
        """The plain transformers model: LoRA adapters merged (ms, logits change <= 2e-6 measured)."""
        if self.peft_method == "lora":
            return self.model.merge_and_unload()
        return self.model

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def arch_config(arch: dict, vocab_size: int, tokenizer) -> Any:
    """transformers config for a from-scratch model of family `arch['family']`."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    family = arch["family"]
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    if family in ("llama", "qwen2"):
        cls = LlamaConfig if family == "llama" else Qwen2Config
        return cls(vocab_size=vocab_size, hidden_size=arch["hidden"], num_hidden_layers=arch["layers"],
                   num_attention_heads=arch["heads"], num_key_value_heads=arch["kv_heads"],
                   intermediate_size=arch["intermediate"], max_position_embeddings=arch["max_position"],
                   tie_word_embeddings=True, **ids)
    if family == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=arch["hidden"], n_layer=arch["layers"], n_head=arch["heads"],
                          n_inner=arch["intermediate"], n_positions=arch["max_position"], **ids)
    raise UserError(f"invalid value for 'student.arch.family': {family!r} (allowed: {', '.join(FAMILIES)})")


def apply_lora(model, peft: dict):
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [m for m in peft["target_modules"] if m not in names]
    if missing:
        raise UserError(f"invalid value for 'student.peft.target_modules': {missing} not in the model "
                        f"(allowed: module names such as {sorted(n for n in names if n.endswith('proj'))[:8]})")
    lcfg = LoraConfig(r=peft["r"], lora_alpha=peft["alpha"], lora_dropout=peft["dropout"],
                      target_modules=list(peft["target_modules"]), task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg)


def load_student(
    name: str,
    name_or_path: str | None = None,
    arch: dict | None = None,
    tokenizer_vocab: int = StudentConfig.tokenizer_vocab,
    dtype: str = StudentConfig.dtype,
    peft: dict | None = None,
    card: dict | None = None,
    train_texts: Iterable[str] | None = None,
    seed: int = 0,
    tokenizer_from: str = StudentConfig.tokenizer_from,
    teacher_tokenizer: Any = None,
) -> StudentBundle:
    """Build (from `arch`) or load (`name_or_path`) a student.

    A built student's tokenizer (`tokenizer_from`): `train` trains a BPE on `train_texts`;
    `teacher` reuses `teacher_tokenizer`; `auto` reuses it when given (a white-box teacher), else
    trains. Sharing the teacher's vocabulary is what makes logit KD possible for a fresh student;
    a pretrained student keeps its own tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from stratos.models.hub import load_causal_lm
    from stratos.models.tokenizer import train_tokenizer

    peft = dict(peft or {"method": "none"})
    if name_or_path:
        model, tok = load_causal_lm(name_or_path, key="student.name_or_path", dtype=dtype)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        family = (card or {}).get("tokenizer_family", "unknown")
    else:
        if tokenizer_from not in TOKENIZER_FROM:
            raise UserError(f"invalid value for 'student.tokenizer_from': {tokenizer_from!r} "
                            f"(allowed: {', '.join(TOKENIZER_FROM)})")
        if tokenizer_from == "teacher" and teacher_tokenizer is None:
            raise UserError("invalid value for 'student.tokenizer_from': 'teacher' but the teacher has no tokenizer "
                            "(allowed: auto or train, or an hf teacher)")
        if teacher_tokenizer is not None and tokenizer_from in ("auto", "teacher"):
            tok = copy.deepcopy(teacher_tokenizer)
        elif train_texts is None:
            raise ValueError("a from-config student needs train_texts to train its tokenizer")
        else:
            tok = train_tokenizer(train_texts, vocab_size=tokenizer_vocab)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(arch_config(dict(arch), len(tok), tok))
        model.generation_config.pad_token_id = tok.pad_token_id
        family = "stratos-bpe"
    if peft.get("method", "none") == "lora":
        model = apply_lora(model, peft)
    return StudentBundle(name=name, model=model, tokenizer=tok, tokenizer_family=family,
                         peft_method=peft.get("method", "none"))


def validate_student(st) -> None:
    """Checks of the `student` group that its types cannot express (UserError, one line)."""
    from stratos.config import local_path_exists
    from stratos.errors import bad_value

    if not local_path_exists(st.name_or_path):
        raise bad_value("student.name_or_path", st.name_or_path, "an existing path, a hub id or an fsspec URL")
    a = st.arch
    for key in ("hidden", "layers", "heads", "kv_heads", "intermediate", "max_position"):
        if int(a[key]) < 1:
            raise bad_value(f"student.arch.{key}", a[key], "an integer >= 1")
    if int(a.hidden) % int(a.heads) or int(a.heads) % int(a.kv_heads):
        raise bad_value("student.arch.heads", a.heads, f"a divisor of hidden ({a.hidden}) and a multiple of kv_heads "
                        f"({a.kv_heads})")
    if int(st.tokenizer_vocab) < 259:  # stratos.models.tokenizer.MIN_VOCAB (not imported: it loads transformers)
        raise bad_value("student.tokenizer_vocab", st.tokenizer_vocab, "an integer >= 259 (256 bytes + 3 specials; "
                        "259 = one token per byte, no merges)")
    if int(st.peft.r) < 1:
        raise bad_value("student.peft.r", st.peft.r, "an integer >= 1")
