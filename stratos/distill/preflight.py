"""Teacher-student preflight, before any training step.

Checks that decide what distillation is possible and whether it fits:
  vocab     identical token->id maps => logit KD; different vocabularies of a white-box teacher whose
            tokenizer gives character offsets (a fast tokenizer) => cross-tokenizer logit KD (spans of equal
            text aligned, stratos/distill/token_alignment.py); otherwise logit KD is refused and
            sequence-level KD is used
  context   the longest training sequence must fit the student's (and an HF teacher's) context
  memory    weights + grads + AdamW moments (+ a frozen teacher) must fit in available RAM/VRAM
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import psutil

from stratos.errors import UserError

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Preflight:
    same_vocab: bool
    vocab_reason: str
    student_context: int
    teacher_context: int | None
    max_seq_len: int
    memory_needed_gb: float
    memory_available_gb: float
    notes: list[str] = field(default_factory=list)
    logit_kd: str = "none"  # "logit KD" | "cross-tokenizer logit KD" | "none": what the vocabularies allow
    shared_tokens: int | None = None  # tokens with identical bytes in both vocabularies (different vocabularies)

    def as_dict(self) -> dict:
        return asdict(self)


def _context(model) -> int:
    cfg = getattr(model, "config", None)
    return int(getattr(cfg, "max_position_embeddings", 0) or getattr(cfg, "n_positions", 0) or 0)


def vocab_compatibility(student_tok, teacher_tok) -> tuple[bool, str]:
    if teacher_tok is None:
        return False, "teacher exposes no tokenizer/logits (text only)"
    if student_tok.get_vocab() == teacher_tok.get_vocab():
        return True, f"identical vocabularies ({len(student_tok)} tokens)"
    return False, f"different vocabularies (student {len(student_tok)} vs teacher {len(teacher_tok)} tokens)"


def logit_kd_route(student_tok, teacher_tok) -> tuple[bool, str, str, int | None]:
    """(same vocabulary, reason, logit KD kind, shared tokens): which logit KD the two tokenizers allow."""
    same, why = vocab_compatibility(student_tok, teacher_tok)
    if same:
        return True, why, "logit KD", None
    if teacher_tok is None:
        return False, why, "none", None
    from stratos.distill.token_alignment import shared_vocab, supports_offsets

    if not (supports_offsets(student_tok) and supports_offsets(teacher_tok)):
        return False, f"{why}; logit KD refused: a slow tokenizer gives no character offsets to align", "none", None
    n = len(shared_vocab(student_tok, teacher_tok))
    return False, (f"{why[:-1]}, {n} shared): cross-tokenizer logit KD (spans of equal text aligned by character "
                   f"offsets; KL on the shared tokens + ULD on the rest)"), "cross-tokenizer logit KD", n


def train_memory_gb(n_params: int, n_trainable: int, dtype: str, teacher_params: int = 0) -> float:
    """Weights (all) + grads and two AdamW fp32 moments (trainable) + frozen teacher weights, in GB.

    Activations are small next to these for the sequence lengths Stratos trains at on CPU;
    the planner's estimator (stratos/plan) models them for GPU-sized runs.
    """
    b = BYTES.get(dtype, 4)
    return (n_params * b + n_trainable * (b + 8) + teacher_params * b) / 1e9


def run_preflight(student, teacher, max_seq_len: int, dtype: str = "float32") -> Preflight:
    teacher_model = getattr(teacher, "model", None)
    same, why, kind, shared = logit_kd_route(student.tokenizer, getattr(teacher, "tokenizer", None))
    s_ctx = _context(student.model)
    t_ctx = _context(teacher_model) if teacher_model is not None else None
    if s_ctx and max_seq_len > s_ctx:
        raise UserError(f"training sequences reach {max_seq_len} tokens but the student's context is {s_ctx} "
                        f"(allowed: raise student.arch.max_position or shorten the task's rationales)")
    t_params = sum(p.numel() for p in teacher_model.parameters()) if teacher_model is not None else 0
    need = train_memory_gb(student.n_params, student.n_trainable, dtype, t_params)
    avail = psutil.virtual_memory().available / 1e9
    notes = []
    if t_ctx and max_seq_len > t_ctx:
        notes.append(f"teacher context {t_ctx} < longest sequence {max_seq_len}: logit KD truncated to the teacher's context")
    if need > avail:
        raise UserError(f"training needs about {need:.1f} GB but {avail:.1f} GB is available "
                        f"(allowed: a smaller student, student.peft.method=lora, or a bigger machine: see the plan stage)")
    return Preflight(same, why, s_ctx, t_ctx, max_seq_len, round(need, 4), round(avail, 1), notes, kind, shared)
