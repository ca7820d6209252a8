"""The LightningModule that trains a student. It only wires things: losses are pure functions
in `stratos/distill/losses.py`, models come from `stratos/models/`.

Per batch (B sequences of T tokens, vocabulary V, student width H):
  student forward            -> hidden (B, T, H); logits come from the LM head inside the loss
  labels shifted by one      -> position t predicts token t+1; -100 = no loss
  sequence / labels: loss = CE (per-token mean over supervised tokens)
  sequence + black-box top-k (batch has topk_*): (1 - w) * CE + w * bucketed KL at T = 1
          (stratos/distill/blackbox_kd.py; the server's log-probs are at T = 1)
  injection: loss = (1 - c) * CE(SFT rows) + c * CE(corpus rows), each a per-token mean, so
          `corpus_weight` c is the corpus' share of the loss whatever the two lengths are
  logit:  loss = (1 - w) * CE + w * KD(student || teacher, T)  (both per-token means; chunked over tokens)
          the teacher is live (a forward per batch) or, with `topk`, its stored top-k log-probs
          looked up by the batch's dataset indices (stratos/distill/teacher_store.py)
  hidden: adds hidden_weight * MSE(proj(teacher hidden), student hidden) over supervised positions
  cross_tokenizer: loss = (1 - w) * CE + w * KD_x, the teacher reading the batch's `teacher_input_ids` (its own
          tokens of the same text) and KD_x taken at the aligned pairs `xtok_pairs` (B, P, 2)
          (stratos/distill/cross_tokenizer_loss.py; the shared vocabulary comes with the module)
  several teachers (logit): each row's KD from its own teacher (`teacher_index` (B,)), group losses weighted by
          supervised tokens (stratos/distill/routing.py: routed_kd); the teacher manifest goes into checkpoints
  on-policy (`on_policy`, a rollouts.RolloutSampler): before the loss, a share of the rows is replaced by the
          student's own samples (marked by batch["on_policy"]); with the live teacher those rows take KD only,
          the rest (1 - w) * CE + w * KD, all as one per-token mean; with a served teacher (scorer logprobs) the
          sampler puts the server's top-k rows into the batch's topk_* and those rows take the bucketed forward
          KL at T = 1 alone, the data rows what sequence KD gives them (CE, or black-box token KD); with the
          verifier their labels are already the corrected text (CE)
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from stratos.config import AlignmentConfig
from stratos.distill.cross_tokenizer_loss import ChunkedCrossTokenizerKD
from stratos.distill.losses import ChunkedDistillLoss
from stratos.distill.rollouts import on_policy_losses
from stratos.distill.routing import RoutedTopK, check_resume, live_signal, routed_kd
from stratos.distill.slices import batch_slices, computed_positions, sliced_forward
from stratos.models.hub import lm_parts


class DistillModule(L.LightningModule):
    def __init__(self, student, mode: str, alignment: AlignmentConfig | dict, lr: float, weight_decay: float, warmup_steps: int,
                 max_steps: int, teacher=None, topk: dict | None = None, corpus_weight: float = 0.0,
                 blackbox_topk: bool = False, length_slices: int = 1, shared_vocab=None,
                 teacher_manifest: list | None = None, on_policy=None) -> None:
        super().__init__()
        # the typed `strategy.alignment` group; a plain dict (tests, benchmarks) fills in the dataclass defaults
        a = alignment if isinstance(alignment, AlignmentConfig) else AlignmentConfig(**dict(alignment))
        self.student = student
        self._teacher = [teacher]  # a list keeps the frozen teacher out of state_dict and checkpoints
        self.teacher_manifest = teacher_manifest  # routing.teacher_manifest: saved in checkpoints, checked on resume
        self.topk = dict(topk or {})  # split ("train" | "val") -> TopKReader of the offline teacher
        self.mode = mode
        self.lr, self.weight_decay, self.warmup_steps, self.max_steps = lr, weight_decay, warmup_steps, max_steps
        self.corpus_weight = float(corpus_weight)
        self.length_slices = int(length_slices)  # forwards on <= this many length-sorted slices (slices.py)
        self.last_positions = 0  # positions the last batch's forward computed, padding included
        self.blackbox_topk = bool(blackbox_topk) and mode == "sequence"
        kd_modes = ("logit", "hidden", "sequence") if self.blackbox_topk else ("logit", "hidden", "cross_tokenizer")
        self.kd_weight = float(a.kd_weight) if mode in kd_modes else 0.0
        self.hidden_weight = float(a.hidden_weight) if mode in ("logit", "hidden") else 0.0
        if mode == "hidden" and self.hidden_weight == 0.0:
            self.hidden_weight = 1.0
        self.loss_fn = ChunkedDistillLoss(
            loss="forward_kl" if self.blackbox_topk else str(a.loss),
            temperature=1.0 if self.blackbox_topk else float(a.temperature),
            kd_weight=self.kd_weight, beta=float(a.beta), alpha=float(a.alpha), chunk_size=int(a.chunk_size),
        )
        self.ce_fn = ChunkedDistillLoss(kd_weight=0.0, chunk_size=int(a.chunk_size))
        self.shared_vocab = shared_vocab  # token_alignment.SharedVocab (cross_tokenizer mode)
        self.xtok_fn = ChunkedCrossTokenizerKD.from_config(a) if mode == "cross_tokenizer" else None
        self.on_policy = on_policy  # rollouts.RolloutSampler, or None (off-policy)
        self.rollout_kd_fn = None  # KD only on the student's samples (GKD): CE on its own tokens teaches nothing
        if on_policy is not None and on_policy.scorer == "logits":
            self.rollout_kd_fn = ChunkedDistillLoss(loss=str(a.loss), temperature=float(a.temperature), kd_weight=1.0,
                                                    beta=float(a.beta), alpha=float(a.alpha), chunk_size=int(a.chunk_size))
        elif on_policy is not None and on_policy.scorer == "logprobs":  # servers report log-probs at T = 1
            self.rollout_kd_fn = ChunkedDistillLoss(loss="forward_kl", temperature=1.0, kd_weight=1.0,
                                                    chunk_size=int(a.chunk_size))
        self.hidden_proj = None
        if self.hidden_weight > 0 and teacher is not None:
            # learned projection teacher width -> student width, so widths may differ
            t_h = teacher.model.config.hidden_size
            s_h = lm_parts(student)[1].weight.shape[1]
            self.hidden_proj = torch.nn.Linear(t_h, s_h, bias=False)

    @property
    def teacher(self):
        return self._teacher[0]

    def losses(self, batch: dict[str, torch.Tensor], split: str = "train") -> dict[str, torch.Tensor]:
        base, head = lm_parts(self.student)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        plan = batch_slices(mask, self.length_slices)  # same rows, less padding computed
        self.last_positions = computed_positions(mask, plan)  # read by trainer.StepMetrics (padding computed)
        hidden = sliced_forward(lambda i, m: base(input_ids=i, attention_mask=m, use_cache=False).last_hidden_state,
                                ids, mask, plan)
        hidden = hidden[:, :-1]  # (B, T-1, H): position t predicts token t+1
        labels = batch["labels"][:, 1:]  # (B, T-1)
        if self.mode == "cross_tokenizer":
            return self._cross_tokenizer_losses(batch, hidden, head.weight, labels)
        t_hidden, teacher = None, {}  # teacher = the one source the KD loss reads
        served = getattr(self.on_policy, "scorer", None) == "logprobs" and self._rolled(batch)
        if self.blackbox_topk or served:  # black-box top-k rows: the data's, or the server's of the rollouts
            if "topk_ids" not in batch:  # validation rows carry no teacher answer: CE
                return self.ce_fn(hidden, head.weight, labels)
            teacher["teacher_topk"] = (batch["topk_ids"][:, :-1], batch["topk_logprobs"][:, :-1],
                                       batch["topk_tail"][:, :-1])
        elif self.kd_weight == 0 and self.hidden_proj is None and not self._rolled(batch):
            pass  # no term reads the teacher (e.g. kd_weight=0, no rollout rows): skip its forward
        elif self.mode == "logit" and isinstance(self.topk.get(split), RoutedTopK):
            # several teachers, offline: each row's KD from its own teacher's top-k store (stratos/distill/routing.py)
            store = self.topk[split]
            return routed_kd(self.loss_fn, hidden, head.weight, labels, batch["teacher_index"], store.ids,
                             store.signal(batch["index"], ids.shape[1], hidden.device))
        elif self.mode == "logit" and "teacher_index" in batch and hasattr(self.teacher, "members"):
            # several teachers, live: each row's KD from its own teacher's forward
            rolled = batch["on_policy"] if self._rolled(batch) else None  # rollouts: KD alone, from the row's teacher
            return routed_kd(self.loss_fn, hidden, head.weight, labels, batch["teacher_index"], self.teacher.ids,
                             live_signal(self.teacher, ids, mask), rolled, self.rollout_kd_fn)
        elif self.mode == "logit" and split in self.topk:
            T = batch["input_ids"].shape[1]  # store rows are right-padded like the batch: (B, T, k), (B, T)
            rows = self.topk[split].read_batch(batch["index"].tolist(), length=T)
            teacher["teacher_topk"] = tuple(x[:, :-1].to(hidden.device) for x in rows.as_tuple())
        elif self.mode in ("logit", "hidden") and self.teacher is not None:
            if getattr(self.teacher, "plain_head", False):
                # hidden states only: the loss forms teacher logits for supervised rows, chunk by chunk,
                # so neither the (B, T, V) teacher logits nor prompt/padding rows are ever computed
                t_hidden = sliced_forward(self.teacher.final_hidden, ids, mask, plan)[:, :-1]
                t_w, t_b = self.teacher.head
                teacher.update(teacher_hidden=t_hidden, teacher_weight=t_w, teacher_bias=t_b)
            else:
                t_logits, t_hid = sliced_forward(self.teacher.logits_and_hidden, ids, mask, plan)
                teacher["teacher_logits"], t_hidden = t_logits[:, :-1], t_hid[:, :-1]
        is_corpus = batch.get("is_corpus")
        if self.corpus_weight > 0 and is_corpus is not None and bool(is_corpus.any()):
            return self._mixed_losses(hidden, head.weight, labels, is_corpus)
        if self._rolled(batch) and teacher:
            out = on_policy_losses(self.loss_fn, self.rollout_kd_fn, hidden, head.weight, labels, batch["on_policy"],
                                   teacher)
        else:
            out = self.loss_fn(hidden, head.weight, labels, **teacher)
        if self.hidden_proj is not None and t_hidden is not None:
            mask = (labels != -100).unsqueeze(-1).to(hidden.dtype)  # (B, T-1, 1)
            mse = ((self.hidden_proj(t_hidden) - hidden) ** 2 * mask).sum() / (mask.sum() * hidden.shape[-1]).clamp(min=1)
            out["loss"] = out["loss"] + self.hidden_weight * mse
            out["hidden_mse"] = mse.detach()
        return out

    def _rolled(self, batch) -> bool:
        """The batch holds student samples the live teacher must score (on-policy KD)."""
        rolled = batch.get("on_policy")
        return self.rollout_kd_fn is not None and rolled is not None and bool(rolled.any())

    def _cross_tokenizer_losses(self, batch, hidden, weight, labels) -> dict[str, torch.Tensor]:
        """CE on every supervised student token + KD_x at the aligned pairs, the teacher on its own tokens. With
        on-policy rows (the student's samples, their teacher tokens and pairs built by the sampler): those take KD_x
        alone, the data rows (1 - w) CE + w KD_x, weighted by their supervised tokens into one per-token mean."""
        rolled = batch["on_policy"].to(labels.device) if self._rolled(batch) else None  # (B,) bool
        data_labels = labels if rolled is None else labels.masked_fill(rolled[:, None], -100)
        out = self.ce_fn(hidden, weight, data_labels)  # {"loss" = CE with grad, "ce", "kd" = 0}
        if self.teacher is None or "xtok_pairs" not in batch or (self.kd_weight == 0 and rolled is None):
            return out
        pairs = batch["xtok_pairs"]  # (B, P, 2) shifted rows; -1 = padding pair
        b, p = (pairs[..., 0] >= 0).nonzero(as_tuple=True)  # (n,), (n,)
        s_rows = hidden[b, pairs[b, p, 0]]  # (n, H): rows of the student's hidden[:, :-1]
        targets = labels[b, pairs[b, p, 0]]  # (n,): the student's next token at each pair (gates the shared term)
        t_pos = pairs[b, p, 1]  # (n,): a shifted row r is input position r of the teacher's sequence
        t_ids, t_mask = batch["teacher_input_ids"], batch["teacher_attention_mask"]
        plan = batch_slices(t_mask, self.length_slices)
        if getattr(self.teacher, "plain_head", False):
            t_hidden = sliced_forward(self.teacher.final_hidden, t_ids, t_mask, plan)[b, t_pos]  # (n, H_t)
            t_w, t_b = self.teacher.head
            teacher = lambda keep: dict(teacher_hidden=t_hidden[keep], teacher_weight=t_w, teacher_bias=t_b)  # noqa: E731
        else:
            t_logits = sliced_forward(self.teacher.logits_and_hidden, t_ids, t_mask, plan)[0][b, t_pos]  # (n, V_t)
            teacher = lambda keep: dict(teacher_logits=t_logits[keep])  # noqa: E731

        def kd_x(keep):  # (n,) bool -> KD_x over those pairs (a per-pair mean), 0 without any
            if not bool(keep.any()):
                return hidden.new_zeros(())
            return self.xtok_fn(s_rows[keep], weight, self.shared_vocab, targets=targets[keep], **teacher(keep))

        w = self.kd_weight
        if rolled is None:
            kd = kd_x(torch.ones_like(b, dtype=torch.bool))
            return {"loss": (1 - w) * out["loss"] + w * kd, "ce": out["ce"], "kd": kd.detach()}
        on = rolled[b]  # (n,) pairs of rollout rows
        kd_data, kd_roll = kd_x(~on), kd_x(on)
        n_data = int((data_labels != -100).sum())
        n_roll = int((labels.masked_fill(~rolled[:, None], -100) != -100).sum())
        data = (1 - w) * out["loss"] + w * kd_data if n_data else hidden.new_zeros(())
        loss = (n_data * data + n_roll * kd_roll) / max(1, n_data + n_roll)
        return {"loss": loss, "ce": out["ce"], "kd": kd_data.detach(), "rollout_kd": kd_roll.detach()}

    def _mixed_losses(self, hidden, weight, labels, is_corpus) -> dict[str, torch.Tensor]:
        """Knowledge injection: SFT and corpus rows share the batch; each group's per-token mean CE
        is weighted by its loss share (a group absent from the batch gives its share to the other)."""
        cor = is_corpus.to(labels.device)[:, None]  # (B, 1)
        sft_labels = labels.masked_fill(cor, -100)  # (B, T-1): corpus rows ignored
        sft = self.loss_fn(hidden, weight, sft_labels)
        corpus = self.loss_fn(hidden, weight, labels.masked_fill(~cor, -100))
        w = self.corpus_weight if bool((sft_labels != -100).any()) else 1.0
        return {"loss": (1 - w) * sft["loss"] + w * corpus["loss"], "ce": sft["ce"], "corpus_ce": corpus["ce"]}

    def on_fit_start(self) -> None:
        if self.on_policy is not None:
            self.on_policy.rank = self.global_rank  # rollouts seeded by (seed, step, rank)
        # A frozen white-box teacher under bf16 precision: its matmuls run in bf16 anyway, but autocast
        # re-casts weights that need no grad on every call (its cast cache keeps trainable leaves only).
        # Storing them in bf16 once halves the teacher's memory and cut its forward from ~54 to ~31 ms
        # on the KD benchmark pair. Not for fp16 (narrow range: a teacher's residual stream can overflow).
        # Teachers sit outside the module's children (no state_dict entry), so Lightning does not move them: each
        # white-box teacher (every member of several) goes to the student's device here.
        for t in (getattr(self.teacher, "members", None) or {"teacher": self.teacher}).values():
            model = getattr(t, "model", None)
            if isinstance(model, torch.nn.Module):
                model.to(self.device)
                if str(self.trainer.precision).startswith("bf16"):
                    model.to(torch.bfloat16)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.teacher_manifest is not None:
            checkpoint["stratos_teachers"] = self.teacher_manifest

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.teacher_manifest is not None:  # resuming with another teacher set: one-line refusal
            check_resume(checkpoint.get("stratos_teachers"), self.teacher_manifest)

    def training_step(self, batch, batch_idx):
        if self.on_policy is not None:  # in place: trainer.StepMetrics then counts the tokens trained on
            batch.update(self.on_policy(self.student, batch, self.global_step))
        out = self.losses(batch)
        self.log("train/loss", out["loss"], prog_bar=True)
        for k in ("ce", "kd", "hidden_mse", "corpus_ce", "rollout_kd"):
            if k in out:
                self.log(f"train/{k}", out[k])
        for k in (k for k in out if k.startswith("teacher_share/")):  # several teachers: supervised-token shares
            self.log(f"train/{k}", out[k])
        if self.on_policy is not None:  # in the output too: StepMetrics logs the last step's train/* keys
            for k, v in self.on_policy.stats.as_metrics().items():
                self.log(f"train/{k}", float(v))
                out[k] = torch.tensor(float(v))
        return out  # "loss" is optimised; trainer.StepMetrics keeps the last one for the manifest

    def validation_step(self, batch, batch_idx):
        out = self.losses(batch, "val")
        self.log("val/loss", out["loss"], prog_bar=True, sync_dist=True)
        self.log("val/ce", out["ce"], sync_dist=True)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr, betas=(0.9, 0.95), foreach=True)

        def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 10 %
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            t = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def shifted_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference CE for tests: logits (B, T, V) at positions predicting labels (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
