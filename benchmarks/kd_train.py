"""Training throughput of Stratos' logit-KD alignment vs TRL's GKDTrainer, same pair, same data.

    python -m benchmarks.kd_train                  # vocab 512 and 32,000
    python -m benchmarks.kd_train --vocab 512 --rounds 3

Both sides train the same student init against the same frozen teacher on the same sequences,
off-policy with forward KL(teacher || student) at T = 1 and nothing else in the loss:
  stratos  DistillModule (mode logit, kd_weight 1) under a Lightning Trainer: the student's hidden
           states and the teacher's go through the chunked fused loss (stratos/distill/losses.py),
           which forms logits only for supervised rows, a chunk at a time; both forwards run on
           length-sorted slices of the batch (stratos/distill/slices.py; auto: on at fp32, off in
           bf16), and under bf16 the frozen teacher is stored in bf16 (as the distill stage does)
  trl      trl.experimental.gkd.GKDTrainer with lmbda=0 (no student generations), seq_kd=False,
           beta=0 (its generalized JSD is then exactly the forward KL): full (B, T, V) logits of
           both models, softmax over every position, masked afterwards
Equal settings: batch 16, fp32, AdamW (lr 1e-3, betas 0.9/0.95, weight decay 0.01), cosine decay
after 5 warm-up steps, gradient clipping 1.0, the per-token mean over supervised tokens, no gradient
checkpointing (TRL's GKDConfig inherits SFTConfig's default gradient_checkpointing=True, which recomputes
activations in the backward and, on-policy, makes GKD generate without a KV cache; Stratos does neither, so
TRL runs with it off here), torch with `--threads` threads. Each side shuffles the same data with its own sampler.

The pair: a Llama teacher (hidden 256, 4 layers, initialised with std 0.1 so its next-token
distributions are far from uniform) and a Llama student (hidden 128, 2 layers), vocabulary V.
Data: random prompts of 32 tokens plus completions of 48-96 tokens (loss on completions only),
so batches carry padding as real data does. Random tokens are enough: the student learns to
imitate the teacher's function of the context, which is what held-out KL measures.

Figures: tokens/s = real (non-padding) tokens per second over the steps after the first 5
(warm-up excluded), from a callback on each side; peak RSS of the worker process; held-out
KL(teacher || student) per supervised token on 64 unseen sequences, before and after training
(same function, same batches for both). Each (side, V, round) is a fresh subprocess; with
`--rounds` > 1 the best tokens/s is reported. Ratios are Stratos / TRL from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from stratos.config import TrainerConfig

PROMPT, MIN_COMPLETION, MAX_COMPLETION = 32, 48, 96
BATCH, LR, WARMUP, SKIP = 16, 1e-3, 5, 5
SIDES = ("stratos", "trl")


def build_pair(root: str, vocab: int, n_train: int, n_heldout: int, seed: int = 0) -> None:
    """Teacher, student init, a word-level tokenizer and the data, saved under `root`."""
    import torch
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>"]
    words = {w: i for i, w in enumerate(special + [f"t{i}" for i in range(vocab - len(special))])}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(words, unk_token="<pad>")),
                                  pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    common = dict(vocab_size=vocab, max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    teacher = LlamaForCausalLM(LlamaConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                           num_key_value_heads=4, intermediate_size=768, initializer_range=0.1,
                                           tie_word_embeddings=False, **common))
    student = LlamaForCausalLM(LlamaConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=4, intermediate_size=384, tie_word_embeddings=True,
                                           **common))
    for name, model in (("teacher", teacher), ("student", student)):
        model.save_pretrained(f"{root}/{name}")
        tok.save_pretrained(f"{root}/{name}")
    g = torch.Generator().manual_seed(seed + 1)

    def seqs(n):
        out = []
        for _ in range(n):
            length = PROMPT + int(torch.randint(MIN_COMPLETION, MAX_COMPLETION + 1, (1,), generator=g))
            ids = torch.randint(3, vocab, (length,), generator=g).tolist()
            out.append({"input_ids": ids, "labels": [-100] * PROMPT + ids[PROMPT:]})
        return out

    with open(f"{root}/data.json", "w") as f:
        json.dump({"train": seqs(n_train), "heldout": seqs(n_heldout)}, f)


def collate(rows):
    """Right-padded input_ids / attention_mask / labels (-100 on prompt and padding)."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n], mask[i, :n], labels[i, :n] = torch.tensor(r["input_ids"]), 1, torch.tensor(r["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def heldout_kl(student, teacher, rows) -> float:
    """KL(teacher || student) per supervised token, full softmax, eval mode."""
    import torch
    import torch.nn.functional as F

    student.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), BATCH):
            b = collate(rows[i:i + BATCH])
            s = student(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            t = teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            keep = b["labels"][:, 1:] != -100
            t_lp, s_lp = F.log_softmax(t[keep].float(), -1), F.log_softmax(s[keep].float(), -1)
            total += float((t_lp.exp() * (t_lp - s_lp)).sum())
            n += int(keep.sum())
    return total / max(n, 1)


class StepClock:
    """perf_counter and cumulative real tokens at every optimizer step."""

    def __init__(self):
        self.times, self.tokens, self._tokens = [], [], 0

    def step(self, batch_tokens: int) -> None:
        self._tokens += batch_tokens
        self.times.append(time.perf_counter())
        self.tokens.append(self._tokens)

    def tokens_per_s(self) -> float:
        a = min(SKIP, len(self.times) - 2)
        return (self.tokens[-1] - self.tokens[a]) / (self.times[-1] - self.times[a])


def train_stratos(root: str, rows, steps: int, clock: StepClock, bf16: bool = False, top_k: int = 0,
                  cache: str = "", length_slices: int = TrainerConfig.length_slices) -> tuple:
    """Stratos' alignment training; top_k > 0 reads the teacher from the offline store (built first,
    timed apart: it is paid once per teacher and dataset, not per run)."""
    import lightning as L
    import torch
    from transformers import AutoModelForCausalLM

    from stratos.distill.examples import ExampleDataset, WithIndex, collate as stratos_collate
    from stratos.distill.module import DistillModule
    from stratos.distill.teacher_store import open_topk_store
    from stratos.models.teacher import HFTeacher

    from stratos.distill.slices import resolve_slices

    student = AutoModelForCausalLM.from_pretrained(f"{root}/student")
    teacher = HFTeacher("bench_teacher", f"{root}/teacher")
    length_slices, _ = resolve_slices(length_slices, "bf16-mixed" if bf16 else "32-true")  # as the stage does
    dataset = ExampleDataset.from_items([(r["input_ids"], r["labels"]) for r in rows])
    store = {}
    if top_k:
        t0 = time.perf_counter()
        store["train"], info = open_topk_store(teacher, dataset, cache_root=cache or f"{root}/cache", k=top_k, temperature=1.0,
                                               pad_id=0, batch_size=BATCH, length_slices=length_slices)
        store.update(seconds=time.perf_counter() - t0, bytes_per_token=info["bytes_per_token"])
    align = {"kd_weight": 1.0, "temperature": 1.0, "loss": "forward_kl"}
    module = DistillModule(student, "logit", align, lr=LR, weight_decay=0.01, warmup_steps=WARMUP, max_steps=steps,
                           teacher=None if top_k else teacher, topk={"train": store["train"]} if top_k else None,
                           length_slices=length_slices)
    module.loss_fn.report_ce = False  # KD only, as GKD; CE would be a second (logged-only) quantity

    class Clock(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.step(int(batch["attention_mask"].sum()))

    loader = torch.utils.data.DataLoader(WithIndex(dataset), batch_size=BATCH, shuffle=True, drop_last=True,
                                         collate_fn=stratos_collate(0), generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1,
                        precision="bf16-mixed" if bf16 else "32-true", gradient_clip_val=1.0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[Clock()])
    trainer.fit(module, loader)
    extra = {"store_seconds": round(store["seconds"], 2), "store_bytes_per_token": store["bytes_per_token"]} if top_k else {}
    return student, teacher.model, extra


def train_trl(root: str, rows, steps: int, clock: StepClock, bf16: bool = False, checkpointing: bool = False):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    student = AutoModelForCausalLM.from_pretrained(f"{root}/student")
    teacher = AutoModelForCausalLM.from_pretrained(f"{root}/teacher")
    tok = AutoTokenizer.from_pretrained(f"{root}/student")
    seen = []

    def counting_collate(batch):
        out = collate(batch)
        seen.append(int(out["attention_mask"].sum()))
        return out

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            clock.step(seen[state.global_step - 1] if len(seen) >= state.global_step else 0)

    args = GKDConfig(output_dir=f"{root}/trl_out", per_device_train_batch_size=BATCH, max_steps=steps,
                     learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=WARMUP, adam_beta2=0.95,
                     weight_decay=0.01, max_grad_norm=1.0, lmbda=0.0, beta=0.0, seq_kd=False, save_strategy="no",
                     gradient_checkpointing=checkpointing,
                     report_to=[], logging_steps=max(1, steps // 4), dataloader_num_workers=0, use_cpu=True,
                     seed=0, disable_tqdm=True, dataloader_drop_last=True, bf16=bf16, fp16=False)
    trainer = GKDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list(rows),
                         data_collator=counting_collate, processing_class=tok, callbacks=[Clock()])
    trainer.train()
    return trainer.model, teacher, {}


# variant -> (trainer, kwargs). TRL's GKDConfig defaults to bf16=True, which on a CPU means bf16
# autocast: "trl_bf16" is TRL as shipped, "trl_fp32" the same with bf16=False.
VARIANTS = {
    "trl_fp32": ("trl", {"bf16": False}),
    "trl_bf16": ("trl", {"bf16": True}),
    "stratos_fp32": ("stratos", {"bf16": False}),
    "stratos_bf16": ("stratos", {"bf16": True}),
    "stratos_store_fp32": ("stratos", {"bf16": False, "top_k": 32}),
    "stratos_unsliced_fp32": ("stratos", {"bf16": False, "length_slices": 1}),
}
RATIOS = (("stratos_fp32", "trl_fp32"), ("stratos_bf16", "trl_bf16"), ("stratos_store_fp32", "trl_fp32"),
          ("stratos_store_fp32", "trl_bf16"), ("stratos_unsliced_fp32", "trl_fp32"), ("stratos_fp32", "stratos_unsliced_fp32"))


def worker(variant: str, root: str, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    with open(f"{root}/data.json") as f:
        data = json.load(f)
    from transformers import AutoModelForCausalLM

    before = heldout_kl(AutoModelForCausalLM.from_pretrained(f"{root}/student"),
                        AutoModelForCausalLM.from_pretrained(f"{root}/teacher"), data["heldout"])
    side, kwargs = VARIANTS[variant]
    clock = StepClock()
    if side == "trl":
        student, teacher, extra = train_trl(root, data["train"], steps, clock, **kwargs)
    else:
        with tempfile.TemporaryDirectory(dir=root) as cache:  # each store run builds its own store, timed
            student, teacher, extra = train_stratos(root, data["train"], steps, clock, cache=cache, **kwargs)
    with open("/proc/self/status") as f:
        peak = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 1024
    return {"variant": variant, "steps": len(clock.times), "tokens_per_s": round(clock.tokens_per_s(), 1),
            "peak_rss_mib": round(peak), "kl_before": round(before, 4),
            "kl_after": round(heldout_kl(student, teacher, data["heldout"]), 4), **extra}


def run_worker(variant: str, root: str, steps: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.kd_train", "--worker", variant, "--root", root,
           "--steps", str(steps), "--threads", str(threads)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{variant} worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[512, 32000])
    p.add_argument("--steps", type=int, nargs="+", default=None,
                   help="training steps per vocabulary (default: 150 at V <= 4096, else 25)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", choices=list(VARIANTS))
    p.add_argument("--root")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, a.root, a.steps[0], a.threads)))
        return
    try:
        import trl
    except ImportError:
        raise SystemExit("this benchmark needs TRL: pip install -c constraints.txt 'stratos[bench]'")
    steps = a.steps or [150 if v <= 4096 else 25 for v in a.vocab]
    results = []
    for v, n in zip(a.vocab, steps):
        with tempfile.TemporaryDirectory() as root:
            build_pair(root, v, n_train=n * BATCH, n_heldout=64)
            runs = {x: [] for x in a.variants}
            for r in range(a.rounds):
                for x in (a.variants if r % 2 == 0 else a.variants[::-1]):  # alternate order: drift hits all
                    runs[x].append(run_worker(x, root, n, a.threads))
                    print(f"V={v} round {r + 1}: {json.dumps(runs[x][-1])}", flush=True)
        best = {x: max(runs[x], key=lambda y: y["tokens_per_s"]) for x in a.variants}
        ratios = {f"{x}/{y}": round(best[x]["tokens_per_s"] / best[y]["tokens_per_s"], 2)
                  for x, y in RATIOS if x in best and y in best}
        results.append({"vocab": v, "steps": n, "best": best, "ratios": ratios})

    print(f"\nKD training: Stratos vs TRL {trl.__version__} GKDTrainer (off-policy forward KL), batch {BATCH}, "
          f"{a.threads} threads, best of {a.rounds} round(s); tokens/s excludes the first {SKIP} steps")
    for r in results:
        print(f"\nV = {r['vocab']:,}, {r['steps']} steps")
        print(f"  {'variant':<20} {'tokens/s':>9} {'peak RSS MiB':>12} {'held-out KL':>18}  notes")
        for x, b in r["best"].items():
            note = (f"store built in {b['store_seconds']:.1f} s, {b['store_bytes_per_token']:.0f} B/token"
                    if "store_seconds" in b else "")
            print(f"  {x:<20} {b['tokens_per_s']:>9,.0f} {b['peak_rss_mib']:>12,} "
                  f"{b['kl_before']:>7.4f} -> {b['kl_after']:.4f}  {note}")
        for k, ratio in r["ratios"].items():
            print(f"  speed-up {k}: {ratio:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
