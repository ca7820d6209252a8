"""Choose how knowledge moves from teacher to student.

`strategy=auto` probes the teacher on `probe_n` held-out items with known answers:
  teacher accuracy >= probe_threshold  -> knowledge ALIGNMENT (the teacher knows the domain;
                                          match its outputs)
  otherwise                            -> knowledge INJECTION (the teacher does not; build data
                                          from verified answers backwards + a domain corpus)
Within alignment the mode follows what the teacher offers and the preflight allows:
  logits + identical vocabulary   -> logit KD (white-box)
  logits + another vocabulary     -> cross-tokenizer logit KD (spans of equal text aligned by character
                                     offsets; KL on the shared tokens + ULD on the rest), when both
                                     tokenizers give offsets (stratos/distill/cross_tokenizer_loss.py)
  otherwise                       -> sequence-level KD on the teacher's verified rationales (black-box,
                                     rejection-sampled by the task's verifier)
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from stratos.config import StrategyConfig
from stratos.tasks.base import Task

log = logging.getLogger("stratos")
NAMES = ("auto", "alignment", "injection", "labels_only")


class Mode(StrEnum):
    """How the student is trained (the loss), once the strategy is decided."""

    logit = "logit"  # CE + KD on the teacher's token distributions (white box, same vocabulary)
    cross_tokenizer = "cross_tokenizer"  # CE + KD at aligned spans across vocabularies (white box)
    hidden = "hidden"  # logit KD + hidden-state MSE through a learned projection
    sequence = "sequence"  # CE on teacher-written, verified rationales (+ token KD from its top-k logprobs)
    injection = "injection"  # CE on reverse-synthesised verified rationales + the domain corpus
    labels = "labels"  # CE on the verified answer line only


@dataclass
class Decision:
    name: str  # alignment | injection | labels_only
    mode: Mode
    reason: str
    teacher_probe_accuracy: float | None
    probe_n: int
    features: dict[str, float] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # e.g. logit KD refused: different vocabularies
    on_policy: dict = field(default_factory=dict)  # on-policy KD as applied: rate, scorer, ... ({} = off-policy)

    def as_dict(self) -> dict:
        return asdict(self)


def probe_teacher(teacher, task: Task, rows: list[dict]) -> tuple[float, dict[str, float]]:
    """Teacher accuracy on `rows` plus mean task-complexity features."""
    from stratos.models.teacher import ask  # torch: only when a probe runs, not when the config is checked

    answers = ask(teacher, task, rows)
    acc = sum(task.is_correct(r, a.text) for r, a in zip(rows, answers)) / max(1, len(rows))
    feats = [task.features(r) for r in rows]
    mean = {k: round(statistics.fmean(f[k] for f in feats), 3) for k in (feats[0] if feats else {})}
    mean["teacher_text_chars"] = round(statistics.fmean(len(a.text) for a in answers), 1) if answers else 0.0
    return acc, mean


class Strategy:
    """Built from `conf/strategy/*.yaml`; holds the distillation settings and makes the decision."""

    def __init__(self, name: str, probe_n: int = StrategyConfig.probe_n,
                 probe_threshold: float = StrategyConfig.probe_threshold, target: str = StrategyConfig.target,
                 alignment: dict | None = None, injection: dict | None = None, **_: object) -> None:
        self.name = name
        self.probe_n = probe_n
        self.probe_threshold = probe_threshold
        self.target = target
        self.alignment = dict(alignment or {})
        self.injection = dict(injection or {})

    def decide(self, teacher, task: Task, probe_rows: list[dict], same_vocab: bool, vocab_reason: str,
               cross_tokenizer: bool = False) -> Decision:
        """`cross_tokenizer`: the preflight found the vocabularies differ but can be aligned (fast tokenizers)."""
        if self.name == "labels_only":
            return Decision("labels_only", Mode.labels, "strategy=labels_only: supervised on verified labels only, "
                            "no teacher knowledge", None, 0)
        rows = probe_rows[: self.probe_n]
        acc, feats = probe_teacher(teacher, task, rows)
        log.info("teacher probe: %.3f accuracy on %d held-out items", acc, len(rows))
        if self.name == "auto":
            knows = acc >= self.probe_threshold
            name = "alignment" if knows else "injection"
            cmp = ">=" if knows else "<"
            why = (f"teacher probe accuracy {acc:.2f} on {len(rows)} held-out items {cmp} threshold "
                   f"{self.probe_threshold:.2f}: " + ("the teacher knows the task -> knowledge alignment" if knows else
                   "the teacher does not know the task -> knowledge injection"))
        else:
            name, why = self.name, f"strategy={self.name} set in config (teacher probe accuracy {acc:.2f})"
        if name == "injection":
            return Decision(name, Mode.injection, why, acc, len(rows), feats)
        mode, refused = self._alignment_mode(teacher, same_vocab, vocab_reason, cross_tokenizer)
        detail = f" ({vocab_reason})" if mode == Mode.cross_tokenizer else ""
        return Decision(name, mode, f"{why}; mode {mode}{detail}", acc, len(rows), feats, refused)

    def prepare(self, cfg, task: Task, teacher, student, train_rows: list[dict], val_rows: list[dict], server=None):
        """Decide, then turn the decision into a typed `TrainingRecipe` (datasets, loss, teacher source).
        `server`: several teachers, the server their work is priced on (route_budget.ServerRate)."""
        from stratos.distill.recipe import prepare_recipe

        return prepare_recipe(self, cfg, task, teacher, student, train_rows, val_rows, server)

    def _alignment_mode(self, teacher, same_vocab: bool, vocab_reason: str,
                        cross_tokenizer: bool = False) -> tuple[Mode, list[str]]:
        wanted = self.alignment.get("mode", "auto")
        caps = getattr(teacher, "capabilities", frozenset({"text"}))
        white_box = "logits" in caps and same_vocab
        cross = "logits" in caps and not same_vocab and cross_tokenizer
        refused = []
        if wanted == "hidden" and cross:  # hidden states of different token positions: no pairing
            refused.append(f"hidden KD refused: {vocab_reason.split(':')[0]}; using cross-tokenizer logit KD instead")
            log.warning(refused[-1])
            return Mode.cross_tokenizer, refused
        if wanted in ("logit", "cross_tokenizer") and cross:
            return Mode.cross_tokenizer, refused
        if wanted == "cross_tokenizer" and white_box:
            return Mode.cross_tokenizer, refused  # allowed: with one vocabulary it is logit KD at every token
        if wanted in ("logit", "hidden", "cross_tokenizer") and not white_box:
            refused.append(f"{wanted} KD refused: {vocab_reason if 'logits' in caps else 'teacher offers text only'}"
                           f"; using sequence-level KD instead")
            log.warning(refused[-1])
            return Mode.sequence, refused
        if wanted == "auto":
            return (Mode.logit if white_box else Mode.cross_tokenizer if cross else Mode.sequence), refused
        return Mode(wanted), refused


def validate_strategy(s) -> None:
    """Range checks of the `strategy` group that its types cannot express (UserError, one line)."""
    from stratos.errors import bad_value, check_values

    al, inj = s.alignment, s.injection
    if s.name not in NAMES:
        raise bad_value("strategy.name", s.name, ", ".join(NAMES))
    checks = [
        ("strategy.probe_n", s.probe_n, int(s.probe_n) >= 1, "an integer >= 1"),
        ("strategy.probe_threshold", s.probe_threshold, 0.0 <= float(s.probe_threshold) <= 1.0, "0 <= accuracy <= 1"),
        ("strategy.alignment.kd_weight", al.kd_weight, 0.0 <= float(al.kd_weight) <= 1.0, "0 <= weight <= 1"),
        ("strategy.alignment.temperature", al.temperature, float(al.temperature) > 0, "> 0"),
        ("strategy.alignment.top_k", al.top_k, int(al.top_k) >= 0, "an integer >= 0 (0 = live teacher)"),
        ("strategy.alignment.mode", str(al.mode), int(al.top_k) == 0 or al.mode in ("auto", "logit"),
         "auto or logit when top_k > 0 (the top-k store holds logits of the student's own tokens)"),
        ("strategy.alignment.cross_tokenizer.shared_weight", al.cross_tokenizer.shared_weight,
         float(al.cross_tokenizer.shared_weight) >= 0, "a weight >= 0"),
        ("strategy.alignment.cross_tokenizer.uld_weight", al.cross_tokenizer.uld_weight,
         float(al.cross_tokenizer.uld_weight) >= 0 and float(al.cross_tokenizer.uld_weight)
         + float(al.cross_tokenizer.shared_weight) > 0, "a weight >= 0, > 0 when shared_weight is 0"),
        ("strategy.alignment.loss", str(al.loss), int(al.top_k) == 0 or al.loss == "forward_kl",
         "forward_kl when top_k > 0 (the other losses need the full teacher distribution)"),
        ("strategy.alignment.n_samples", al.n_samples, int(al.n_samples) >= 1, "an integer >= 1"),
        ("strategy.injection.corpus_weight", inj.corpus_weight, 0.0 <= float(inj.corpus_weight) < 1.0,
         "0 <= weight < 1 (the corpus' share of the loss)"),
        ("strategy.injection.corpus_window", inj.corpus_window, int(inj.corpus_window) >= 0,
         "an integer >= 0 (0 = the 90th percentile of supervised lengths)"),
    ]
    check_values(checks)
    from stratos.distill.on_policy import check_on_policy_values

    check_on_policy_values(al.on_policy)
