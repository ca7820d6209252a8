"""A tiny Llama LM trained with the stratos.resilience wiring; run as a subprocess by the fault tests.

    python tests/resilience/tiny_train.py OUT [--steps 40] [--batch 8] [--devices 1] [--ckpt-every 10]
                                          [--step-sleep 0] [--seed 0] [--n 96] [--signal-at 17:USR1]

Trains `LlamaForCausalLM` built from config (no download) on a synthetic language (noisy
arithmetic progressions mod V, so the loss really falls) with `ResumableLoader`,
`PreemptionCheckpoint` and `latest_checkpoint`, i.e. the same wiring the distill stage uses.
Prints `step=N` after every optimizer step (tests signal on it; `--signal-at STEP:NAME` makes the
process send itself a real signal at that step, for exact fault injection) and writes
  OUT/curve.jsonl   {"step", "loss"} per step, loss = global-batch mean (all-reduced under DDP)
  OUT/final.json    {"step", "eval_loss", "weights_sha256", "resumed_from"} at the end
Exit codes: 0 done, 75 preempted (checkpoint written; run again to resume).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from transformers import LlamaConfig, LlamaForCausalLM

from stratos.artifacts import read_jsonl, write_json, write_jsonl
from stratos.resilience import ResumableLoader, latest_checkpoint, trainer_kwargs

VOCAB, SEQ = 64, 16


def synthetic_data(n: int, seed: int) -> torch.Tensor:
    """(n, SEQ) token ids: x_t = (a + b t) mod V, with 10% of tokens replaced by noise."""
    g = torch.Generator().manual_seed(1000 + seed)
    a = torch.randint(0, VOCAB, (n, 1), generator=g)
    b = torch.randint(1, 7, (n, 1), generator=g)
    x = (a + b * torch.arange(SEQ)) % VOCAB
    noise = torch.rand(n, SEQ, generator=g) < 0.1
    return torch.where(noise, torch.randint(0, VOCAB, (n, SEQ), generator=g), x)


class Tokens(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


class TinyLM(L.LightningModule):
    def __init__(self, seed: int, lr: float = 1e-2) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                                  num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                                  max_position_embeddings=SEQ))
        self.lr = lr

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        # every sequence has SEQ tokens, so the mean of per-rank means is the global-batch mean
        loss = self.model(input_ids=batch, labels=batch).loss
        self.log("train/loss", loss, sync_dist=True, on_step=True, prog_bar=False)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.01)
        warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 5))  # state must resume too
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warm, "interval": "step"}}


class Curve(Callback):
    """Global-batch loss per step; saved with every checkpoint so a resumed run continues it."""

    def __init__(self, url: str, sleep: float, signal_at: tuple[int, int] | None = None) -> None:
        self.url, self.sleep, self.rows, self.signal_at = url, sleep, [], signal_at

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step > 0 and os.path.exists(self.url):
            self.rows = [r for r in read_jsonl(self.url) if r["step"] <= trainer.global_step]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = float(trainer.callback_metrics["train/loss"])
        self.rows.append({"step": trainer.global_step, "loss": loss})
        if trainer.is_global_zero:
            print(f"step={trainer.global_step}", flush=True)
        if self.sleep:
            time.sleep(self.sleep)
        if self.signal_at and trainer.global_step == self.signal_at[0] and trainer.is_global_zero:
            os.kill(os.getpid(), self.signal_at[1])  # as if the signal arrived during this step

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.is_global_zero:
            write_jsonl(self.url, self.rows)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            write_jsonl(self.url, self.rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=8, help="global batch")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--ckpt-every", type=int, default=10)
    p.add_argument("--step-sleep", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=96)
    p.add_argument("--signal-at", default=None, help="STEP:SIGNAME, e.g. 17:USR1 (rank 0 signals itself)")
    p.add_argument("--plain-loader", action="store_true",
                   help="negative control: DataLoader(shuffle=True) + Lightning's samplers (not resumable)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)  # same arithmetic in every run (and 2 cores shared with other jobs)
    os.makedirs(a.out, exist_ok=True)
    ckpt_dir = os.path.join(a.out, "ckpt")

    data = Tokens(synthetic_data(a.n, a.seed))
    per_device = a.batch // a.devices
    if a.plain_loader:
        loader = torch.utils.data.DataLoader(data, per_device, shuffle=True, drop_last=True)
    else:
        loader = ResumableLoader(data, per_device, shuffle=True, seed=a.seed, drop_last=True)
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="step_{step:06d}", auto_insert_metric_name=False,
                           every_n_train_steps=a.ckpt_every, save_last=True, save_top_k=1, monitor=None)
    signal_at = None
    if a.signal_at:
        step, name = a.signal_at.split(":")
        signal_at = (int(step), int(getattr(signal, "SIG" + name)))
    curve = Curve(os.path.join(a.out, "curve.jsonl"), a.step_sleep, signal_at)
    trainer = L.Trainer(accelerator="cpu", devices=a.devices, strategy="ddp" if a.devices > 1 else "auto",
                        max_steps=a.steps, max_epochs=-1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=a.out,
                        **{**trainer_kwargs([ckpt, curve]), "use_distributed_sampler": a.plain_loader})
    L.seed_everything(a.seed, verbose=False)  # the plain loader's shuffle draws from the global RNG
    module = TinyLM(a.seed)
    resume = latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None
    trainer.fit(module, loader, ckpt_path=resume)  # Preempted (exit 75) propagates from here

    if trainer.is_global_zero:
        module.eval()
        with torch.no_grad():
            probe = synthetic_data(16, a.seed + 1)
            eval_loss = float(module.model(input_ids=probe, labels=probe).loss)
        h = hashlib.sha256()
        for k, v in sorted(module.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().contiguous().numpy().tobytes())
        write_json(os.path.join(a.out, "final.json"), {"step": trainer.global_step, "eval_loss": eval_loss,
                                                       "weights_sha256": h.hexdigest(), "resumed_from": resume})
    return 0


if __name__ == "__main__":
    sys.exit(main())
