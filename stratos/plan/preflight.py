"""Pairing preflight: which teacher -> student -> strategy triples can run, and how.

Checked from the model cards, before any server is considered:

  task       an engine teacher only knows the tasks it has a score for
  size       an HF teacher needs a known size, and the student must be smaller (capacity ratio > 1)
  context    the student's context must hold a training sequence (planner.seq_len); a shorter
             teacher context only truncates logit KD (note)
  tokenizer  logit KD needs a white-box teacher with the student's tokenizer family; otherwise
             alignment runs as sequence-level KD on the teacher's verified rationales (note)
  template   a chat teacher with a template-less student: prompts use the plain format (note)
  licence    licences that bind derivatives (note)

Memory fit needs a server, so the planner adds "fits no server" after evaluating candidates.
Excluded triples keep their reasons; they are written to plan.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stratos.plan.estimators import size_prior, PRIORS
from stratos.plan.zoo import ModelEntry, Zoo

STRATEGIES = ("alignment", "injection", "labels_only")
NO_TOKENIZER = ("none", "unknown", "")


@dataclass
class PairTable:
    """(T, U, K) arrays over teachers x students x strategies."""

    mode: np.ndarray  # str: logit | sequence | injection | labels
    ok: np.ndarray  # bool
    teacher_acc: np.ndarray  # (T,) prior accuracy of each teacher on the task
    student_acc: np.ndarray  # (U,) prior accuracy of each student on the task
    reasons: dict[tuple[int, int, int], list[str]] = field(default_factory=dict)
    notes: dict[tuple[int, int, int], list[str]] = field(default_factory=dict)


def prior_accuracy(m: ModelEntry, task: str) -> float:
    """The card's score for `task`, else the size prior (else PRIORS['unknown_accuracy'])."""
    if task in m.prior_scores:
        return float(m.prior_scores[task])
    if m.params > 0:
        return float(size_prior(m.params))
    return PRIORS["unknown_accuracy"]


def _fmt_b(params: float) -> str:
    return f"{params / 1e9:.3g}B" if params >= 1e8 else f"{params / 1e6:.3g}M"


def check_pair(t: ModelEntry, s: ModelEntry, strategy: str, task: str, seq_len: int) -> tuple[str, list[str], list[str]]:
    """(mode, reasons to exclude, notes) for one triple."""
    reasons, notes = [], []
    if t.kind == "engine" and task not in t.prior_scores:
        reasons.append(f"engine teacher {t.name} has no answers for task '{task}' (engines are task-specific)")
    if t.kind == "hf":
        if t.params <= 0:
            reasons.append(f"teacher {t.name}: card.params_b is unknown (needed to size the teacher)")
        elif s.params >= t.params:
            reasons.append(f"student {s.name} ({_fmt_b(s.params)}) is not smaller than teacher {t.name} "
                           f"({_fmt_b(t.params)}): capacity ratio {t.params / max(s.params, 1):.2f} <= 1")
    if s.params <= 0:
        reasons.append(f"student {s.name}: card.params_b is unknown")
    if s.context < seq_len:
        reasons.append(f"student context {s.context} < planner.seq_len {seq_len}")
    if strategy == "alignment":
        same = (t.kind == "hf" and t.tokenizer_family == s.tokenizer_family
                and t.tokenizer_family not in NO_TOKENIZER)
        if same:
            mode = "logit"
            if t.vocab and s.vocab and t.vocab != s.vocab:
                notes.append(f"same tokenizer ({t.tokenizer_family}), embedding rows differ ({t.vocab} vs {s.vocab}): "
                             f"logits sliced to the shared vocabulary")
            if t.context < seq_len:
                notes.append(f"teacher context {t.context} < planner.seq_len {seq_len}: logit KD truncated")
        else:
            mode = "sequence"
            if (t.kind == "openai" and t.top_logprobs > 0 and t.tokenizer_family == s.tokenizer_family
                    and t.tokenizer_family not in NO_TOKENIZER):
                why = (f"same tokenizer family ({t.tokenizer_family}) behind an API: token-level KD from its "
                       f"top-{t.top_logprobs} logprobs where tokens map (distill/token_kd.json)")
            elif t.kind == "openai" and t.top_logprobs > 0:
                why = "the API's top-k logprobs live in its own tokenizer, not the student's"
            elif t.kind != "hf":
                why = "the teacher offers no logits"
            else:
                why = f"different tokenizers ({t.tokenizer_family} vs {s.tokenizer_family})"
            notes.append(f"alignment runs as sequence-level KD on verified rationales ({why})")
    elif strategy == "injection":
        mode = "injection"
    else:
        mode = "labels"
    for m in (t, s):
        if m.unset:
            notes.append(f"{m.name} needs {', '.join(m.unset)} set before it can run")
    if t.chat_template and not s.chat_template:
        notes.append(f"student {s.name} has no chat template: prompts use the plain format")
    for m in (t, s):
        if "llama" in m.licence.lower():
            notes.append(f"{m.name}: {m.licence} binds derivatives (name prefix 'Llama', attribution, use policy)")
    return mode, reasons, notes


def preflight(zoo: Zoo, strategies: list[str], task: str, seq_len: int) -> PairTable:
    T, U, K = len(zoo.teachers), len(zoo.students), len(strategies)
    mode = np.empty((T, U, K), dtype=object)
    ok = np.ones((T, U, K), dtype=bool)
    reasons, notes = {}, {}
    for i, t in enumerate(zoo.teachers):
        for j, s in enumerate(zoo.students):
            for k, strat in enumerate(strategies):
                m, why, note = check_pair(t, s, strat, task, seq_len)
                mode[i, j, k] = m
                if why:
                    ok[i, j, k] = False
                    reasons[(i, j, k)] = why
                if note:
                    notes[(i, j, k)] = note
    return PairTable(mode=mode, ok=ok,
                     teacher_acc=np.array([prior_accuracy(t, task) for t in zoo.teachers]),
                     student_acc=np.array([prior_accuracy(s, task) for s in zoo.students]),
                     reasons=reasons, notes=notes)


def excluded_list(zoo: Zoo, strategies: list[str], pairs: PairTable) -> list[dict]:
    """Excluded triples grouped per (teacher, student) with their reasons, for plan.json."""
    grouped: dict[tuple[int, int], dict] = {}
    for (i, j, k), why in sorted(pairs.reasons.items()):
        g = grouped.setdefault((i, j), {"teacher": zoo.teachers[i].name, "student": zoo.students[j].name,
                                        "strategies": [], "reasons": []})
        g["strategies"].append(strategies[k])
        for w in why:
            if w not in g["reasons"]:
                g["reasons"].append(w)
    return list(grouped.values())
