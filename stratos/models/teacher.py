"""Teachers: where the knowledge comes from.

Every teacher answers task rows with text (`answer(task, rows)`), and says what else it can
offer in `capabilities`:
  text      always — sequence-level (chain-of-thought) distillation works with any teacher
  logprobs  top-k log-probabilities per generated token (OpenAI-compatible servers that offer them)
  logits    full next-token logits (white-box HF models) — logit KD
  hidden    hidden states (white-box HF models) — hidden-state KD

Backends: `EngineTeacher` (the task's own rules engine writes verified rationales),
`HFTeacher` (transformers model by name or path), and `OpenAITeacher`
(stratos/models/openai_teacher.py, any OpenAI-compatible endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

from stratos.config import HFTeacherConfig
from stratos.tasks.base import Task

# torch and transformers are imported where a model is built or run: `validate_teacher` below runs on
# every CLI start (stratos/checks.py), and a bad value elsewhere must be refused in a second, not after
# seconds of importing them.


@dataclass
class TeacherAnswer:
    text: str
    error: str | None = None


def rules_prompt(task: Task, question: str) -> str:
    """Knowledge-injection prompt: the task's rules in front of the question."""
    return f"{task.corpus().strip()}\n\n{question}"


class EngineTeacher:
    """The task's rules engine as a teacher: exact, verified rationales; no weights, no logits."""

    kind = "engine"
    capabilities = frozenset({"text"})

    def __init__(self, name: str, **_: object) -> None:
        self.name = name

    def answer(self, task: Task, rows: list[dict], rules_in_prompt: bool = False) -> list[TeacherAnswer]:
        return [TeacherAnswer(task.rationale(r)) for r in rows]


class HFTeacher:
    """A transformers causal LM (white-box): text, logits and hidden states."""

    kind = "hf"
    capabilities = frozenset({"text", "logits", "hidden"})

    def __init__(self, name: str, name_or_path: str, dtype: str = HFTeacherConfig.dtype,
                 max_new_tokens: int = HFTeacherConfig.max_new_tokens, **_: object):
        self.name = name
        self.name_or_path = name_or_path
        from stratos.models.hub import load_causal_lm

        self.max_new_tokens = max_new_tokens
        self.model, self.tokenizer = load_causal_lm(name_or_path, key="teacher.name_or_path", dtype=dtype)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def answer(self, task: Task, rows: list[dict], rules_in_prompt: bool = False) -> list[TeacherAnswer]:
        qs = [rules_prompt(task, r["question"]) if rules_in_prompt else r["question"] for r in rows]
        from stratos.models.generate import greedy_generate

        n = min(self.max_new_tokens, task.max_new_tokens)
        return [TeacherAnswer(t) for t in greedy_generate(self.model, self.tokenizer, qs, max_new_tokens=n)]

    def logits_and_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(logits (B, T, V), last hidden state (B, T, H)) for KD."""
        import torch

        with torch.no_grad():
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
        return out.logits, out.hidden_states[-1]

    @property
    def plain_head(self) -> bool:
        """True when logits = final hidden @ head.weight.T (+ bias): no soft-capping or logit scaling
        (Gemma 2, Cohere), so KD may form the teacher's logits chunk by chunk from its hidden states."""
        c = self.model.config
        return not any(getattr(c, a, None) for a in ("final_logit_softcapping", "logit_scale", "output_multiplier"))

    def final_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Final hidden state (B, T, H), without the (B, T, V) logits: the chunked KD loss multiplies
        only the supervised rows by the head (see `head`)."""
        import torch

        from stratos.models.hub import lm_parts

        base, _ = lm_parts(self.model)
        with torch.no_grad():
            return base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(LM head weight (V, H), bias (V,) | None): logits = final hidden @ weight.T (+ bias)."""
        from stratos.models.hub import lm_parts

        _, head = lm_parts(self.model)
        return head.weight, getattr(head, "bias", None)


def ask(teacher, task: Task, rows: list[dict], rules_in_prompt: bool = False) -> list[TeacherAnswer]:
    """Uniform entry for any teacher (engine, HF, OpenAI-compatible)."""
    if hasattr(teacher, "answer"):
        return teacher.answer(task, rows, rules_in_prompt=rules_in_prompt)
    qs = [rules_prompt(task, r["question"]) if rules_in_prompt else r["question"] for r in rows]
    outs = teacher.generate(qs, max_new_tokens=task.max_new_tokens)
    return [TeacherAnswer(o.text or "", o.error) for o in outs]


def validate_teacher(t, key: str = "teacher") -> None:
    """Checks of the `teacher` group that its types cannot express (UserError, one line); `key` names the node
    (`teachers.<id>` for a member of several teachers, stratos/models/teachers.py).

    Each kind's required keys (hf: name_or_path; openai: base_url, model) are `???` in its schema
    (stratos/config/models.py), so a missing one is caught before this as a missing value.
    """
    from stratos.config import local_path_exists
    from stratos.errors import bad_value

    if t.kind == "hf" and not local_path_exists(t.name_or_path):
        raise bad_value(f"{key}.name_or_path", t.name_or_path, "an existing path, a hub id or an fsspec URL")
    if t.kind == "openai" and not str(t.base_url).startswith(("http://", "https://")):
        raise bad_value(f"{key}.base_url", t.base_url, "an http(s) URL ending in /v1")
    if int(t.max_new_tokens) < 1:
        raise bad_value(f"{key}.max_new_tokens", t.max_new_tokens, "an integer >= 1")
