"""Training throughput of Stratos' logit-KD alignment vs TRL's GKDTrainer, same pair, same data, off- and on-policy.

    python -m benchmarks.kd_train                  # vocab 512 and 32,000, off- and on-policy
    python -m benchmarks.kd_train --vocab 512 --rounds 3
    python -m benchmarks.kd_train --policy on --rounds 3     # the on-policy table alone

Off-policy (`--policy off`): both sides train the same student init against the same frozen teacher on the
same sequences, with forward KL(teacher || student) at T = 1 and nothing else in the loss:
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

On-policy (`--policy on`, GKD's lambda = 1): every row of every batch is replaced by the student's own
sample of its prompt (the data's 32 prompt tokens; the data's completions are never trained on), drawn at
temperature 1.0 from the full distribution (no top-k / top-p), up to 64 new tokens, cut after the first
</s> (kept); the loss is forward KL(teacher || student) at T = 1 on exactly the sampled tokens, the live
teacher scoring them, per-token mean over the sampled tokens of the batch:
  stratos  DistillModule with `on_policy` = the RolloutSampler the distill stage builds
           (OnPolicyPlan("logits", rate 1.0, T 1.0, 64).sampler(seed 0, tokenizer, the student's context);
           stratos/distill/rollouts.py: a KV-cached sampling loop, last-position logits only, one uniform
           per row and step (inverse CDF) where torch.multinomial draws V), the rollout rows' KD through the
           same chunked fused loss as off-policy
  trl      GKDTrainer with lmbda=1 (`random.random() <= lmbda`: every step), seq_kd=False, beta=0,
           temperature=1.0, max_new_tokens=64: `model.generate(prompts, do_sample, top_k=0, top_p=1.0,
           use_cache)`, positions after the first </s> masked, then full (B, T, V) logits of both models
Equal settings as off-policy (batch 16, optimiser, schedule, clipping, precision per variant). Differences
that remain: each side draws its own samples (Stratos from a generator seeded per step, TRL from the global
RNG), so the sampled sequences and their lengths differ, though their distribution is the same; the TRL
batches carry no `labels` (only `prompts`), because with data labels transformers' Trainer would divide
GKD's summed KL by the data completions' token count (`num_items_in_batch`, counted before GKD swaps the
batch for the samples) instead of the sampled tokens'; without them GKD takes the per-token mean over the
sampled tokens, as Stratos does. Alike on both sides, so not differences: all prompts have 32 tokens (no
left padding, same positions), and the student has no dropout (Stratos samples in eval mode, TRL in train
mode). A decode step is a few small ops: on a busy machine 2 threads can spend most of it in barriers (see
benchmarks/on_policy.py), so compare on-policy figures only from a quiet machine or at `--threads 1`. TRL 1.16 logs that this configuration (lmbda 1, T 1) is also covered by
its `DistillationTrainer` (chunked loss; not measured here: the issue names GKDTrainer).

Figures: tokens/s = real (non-padding) tokens trained on per second over the steps after the first 5
(warm-up excluded), from a callback on each side; on-policy those are the rows as trained (prompt +
sampled tokens, after the sample replaced the data row), and the time between steps includes the
sampling, which is part of an on-policy step. Sampled tokens and the seconds spent sampling (all steps,
warm-up included) are shown beside. Peak RSS of the worker process; held-out KL(teacher || student) per
supervised token on 64 unseen data sequences, before and after training (same function, same batches for
both sides and both policies). Each (side, policy, V, round) is a fresh subprocess; with `--rounds` > 1
the best tokens/s is reported. Ratios are Stratos / TRL from the same run.
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
MAX_NEW_TOKENS, SAMPLE_TEMPERATURE = 64, 1.0  # on-policy sampling, both sides
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


def prompt_collate(rows):
    """TRL on-policy batches: each row's prompt (the tokens before its first label), left-padded, as the
    `prompts` / `prompt_attention_mask` GKDTrainer generates from (and as input_ids); no labels (module doc)."""
    import torch

    prompts = [r["input_ids"][:next(i for i, y in enumerate(r["labels"]) if y != -100)] for r in rows]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(rows), width, dtype=torch.long)  # (B, T_p), pad id 0
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    return {"input_ids": ids, "attention_mask": mask, "prompts": ids, "prompt_attention_mask": mask}


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
                  cache: str = "", length_slices: int = TrainerConfig.length_slices, on_policy: bool = False) -> tuple:
    """Stratos' alignment training; top_k > 0 reads the teacher from the offline store (built first,
    timed apart: it is paid once per teacher and dataset, not per run); on_policy: every row is the
    student's sample, scored by the live teacher (the distill stage's RolloutSampler at rate 1)."""
    import lightning as L
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from stratos.distill.examples import ExampleDataset, WithIndex, collate as stratos_collate
    from stratos.distill.module import DistillModule
    from stratos.distill.on_policy import OnPolicyPlan
    from stratos.distill.teacher_store import open_topk_store
    from stratos.models.teacher import HFTeacher

    from stratos.distill.slices import resolve_slices

    student = AutoModelForCausalLM.from_pretrained(f"{root}/student")
    sampler = None
    if on_policy:  # as stratos/distill/fit.py builds it: (seed, the student's tokenizer, its context)
        sampler = OnPolicyPlan("logits", 1.0, SAMPLE_TEMPERATURE, MAX_NEW_TOKENS).sampler(
            0, AutoTokenizer.from_pretrained(f"{root}/student"), student.config.max_position_embeddings)
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
                           length_slices=length_slices, on_policy=sampler)
    module.loss_fn.report_ce = False  # KD only, as GKD; CE would be a second (logged-only) quantity

    class Clock(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.step(int(batch["attention_mask"].sum()))  # on-policy: the rows as trained (sampled in place)

    loader = torch.utils.data.DataLoader(WithIndex(dataset), batch_size=BATCH, shuffle=True, drop_last=True,
                                         collate_fn=stratos_collate(0), generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1,
                        precision="bf16-mixed" if bf16 else "32-true", gradient_clip_val=1.0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[Clock()])
    trainer.fit(module, loader)
    extra = {"store_seconds": round(store["seconds"], 2), "store_bytes_per_token": store["bytes_per_token"]} if top_k else {}
    if sampler is not None:
        extra.update(sampled_tokens=sampler.stats.sampled_tokens, sampling_seconds=round(sampler.stats.seconds, 2))
    return student, teacher.model, extra


def train_trl(root: str, rows, steps: int, clock: StepClock, bf16: bool = False, on_policy: bool = False):
    """TRL's GKDTrainer, off-policy (lmbda 0) or fully on-policy (lmbda 1: every batch is student samples)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    student = AutoModelForCausalLM.from_pretrained(f"{root}/student")
    teacher = AutoModelForCausalLM.from_pretrained(f"{root}/teacher")
    tok = AutoTokenizer.from_pretrained(f"{root}/student")
    seen, sampled = [], {"tokens": 0, "seconds": 0.0}

    class CountingGKD(GKDTrainer):
        """GKDTrainer unchanged, but for recording the real tokens each step trains on (on-policy: after the
        samples replaced the batch) and the tokens sampled and the time spent sampling."""

        def compute_loss(self, model, inputs, *args, **kwargs):
            seen.append(int(inputs["attention_mask"].sum()))
            return super().compute_loss(model, inputs, *args, **kwargs)

        def generate_on_policy_outputs(self, model, inputs, generation_config):
            t0 = time.perf_counter()
            out = GKDTrainer.generate_on_policy_outputs(model, inputs, generation_config)
            sampled["seconds"] += time.perf_counter() - t0
            sampled["tokens"] += int(out[1][:, inputs["prompts"].shape[1]:].sum())  # up to the first </s>
            return out

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            clock.step(seen[state.global_step - 1] if len(seen) >= state.global_step else 0)

    args = GKDConfig(output_dir=f"{root}/trl_out", per_device_train_batch_size=BATCH, max_steps=steps,
                     learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=WARMUP, adam_beta2=0.95,
                     weight_decay=0.01, max_grad_norm=1.0, lmbda=1.0 if on_policy else 0.0, beta=0.0, seq_kd=False,
                     temperature=SAMPLE_TEMPERATURE, max_new_tokens=MAX_NEW_TOKENS, save_strategy="no",
                     gradient_checkpointing=False,  # TRL's default is True (module doc)
                     report_to=[], logging_steps=max(1, steps // 4), dataloader_num_workers=0, use_cpu=True,
                     seed=0, disable_tqdm=True, dataloader_drop_last=True, bf16=bf16, fp16=False)
    trainer = CountingGKD(model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list(rows),
                          data_collator=prompt_collate if on_policy else collate, processing_class=tok,
                          callbacks=[Clock()])
    trainer.train()
    extra = {"sampled_tokens": sampled["tokens"], "sampling_seconds": round(sampled["seconds"], 2)} if on_policy else {}
    return trainer.model, teacher, extra


# variant -> (trainer, kwargs). TRL's GKDConfig defaults to bf16=True, which on a CPU means bf16
# autocast: "trl_bf16" is TRL as shipped, "trl_fp32" the same with bf16=False. "_on_": on-policy (lambda 1).
VARIANTS = {
    "trl_fp32": ("trl", {"bf16": False}),
    "trl_bf16": ("trl", {"bf16": True}),
    "stratos_fp32": ("stratos", {"bf16": False}),
    "stratos_bf16": ("stratos", {"bf16": True}),
    "stratos_store_fp32": ("stratos", {"bf16": False, "top_k": 32}),
    "stratos_unsliced_fp32": ("stratos", {"bf16": False, "length_slices": 1}),
    "trl_on_fp32": ("trl", {"bf16": False, "on_policy": True}),
    "trl_on_bf16": ("trl", {"bf16": True, "on_policy": True}),
    "stratos_on_fp32": ("stratos", {"bf16": False, "on_policy": True}),
    "stratos_on_bf16": ("stratos", {"bf16": True, "on_policy": True}),
}
RATIOS = (("stratos_fp32", "trl_fp32"), ("stratos_bf16", "trl_bf16"), ("stratos_store_fp32", "trl_fp32"),
          ("stratos_store_fp32", "trl_bf16"), ("stratos_unsliced_fp32", "trl_fp32"), ("stratos_fp32", "stratos_unsliced_fp32"),
          ("stratos_on_fp32", "trl_on_fp32"), ("stratos_on_bf16", "trl_on_bf16"))
POLICIES = {"off": "off-policy forward KL", "on": f"on-policy: lambda 1, student samples at T={SAMPLE_TEMPERATURE:g} "
                                                  f"up to {MAX_NEW_TOKENS} new tokens, forward KL on them"}


def policy(variant: str) -> str:
    return "on" if VARIANTS[variant][1].get("on_policy") else "off"


def select(policy_arg: str, variants: list[str] | None = None) -> list[str]:
    """The variants a run measures: those named, else every variant of `--policy` (off | on | both)."""
    return variants or [x for x in VARIANTS if policy_arg in ("both", policy(x))]


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
    return {"variant": variant, "steps": len(clock.times), "tokens": clock.tokens[-1],
            "tokens_per_s": round(clock.tokens_per_s(), 1),
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
                   help="training steps per vocabulary, both policies (default: 150 at V <= 4096, else 25)")
    p.add_argument("--policy", choices=["off", "on", "both"], default="both",
                   help="off-policy variants, on-policy (lambda 1) variants, or both")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                   help="these variants only (default: every variant of --policy)")
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
    variants = select(a.policy, a.variants)
    steps = a.steps or [150 if v <= 4096 else 25 for v in a.vocab]
    results = []
    for v, n in zip(a.vocab, steps):
        with tempfile.TemporaryDirectory() as root:
            build_pair(root, v, n_train=n * BATCH, n_heldout=64)  # on-policy reads only the prompts
            runs = {x: [] for x in variants}
            for r in range(a.rounds):
                for x in (variants if r % 2 == 0 else variants[::-1]):  # alternate order: drift hits all
                    runs[x].append(run_worker(x, root, n, a.threads))
                    print(f"V={v} round {r + 1}: {json.dumps(runs[x][-1])}", flush=True)
        best = {x: max(runs[x], key=lambda y: y["tokens_per_s"]) for x in variants}
        ratios = {f"{x}/{y}": round(best[x]["tokens_per_s"] / best[y]["tokens_per_s"], 2)
                  for x, y in RATIOS if x in best and y in best}
        results.append({"vocab": v, "steps": n, "best": best, "ratios": ratios})

    for pol in (pol for pol in POLICIES if any(policy(x) == pol for x in variants)):
        print(f"\nKD training: Stratos vs TRL {trl.__version__} GKDTrainer ({POLICIES[pol]}), batch {BATCH}, "
              f"{a.threads} threads, best of {a.rounds} round(s); tokens/s = real tokens trained on per second"
              f"{', sampling included' if pol == 'on' else ''}, first {SKIP} steps excluded")
        for r in results:
            print(f"\nV = {r['vocab']:,}, {r['steps']} steps")
            print(f"  {'variant':<22} {'tokens/s':>9} {'peak RSS MiB':>12} {'held-out KL':>18}  notes")
            for x, b in r["best"].items():
                if policy(x) == pol:
                    print(f"  {x:<22} {b['tokens_per_s']:>9,.0f} {b['peak_rss_mib']:>12,} "
                          f"{b['kl_before']:>7.4f} -> {b['kl_after']:.4f}  {note(b)}")
            for k, ratio in r["ratios"].items():
                if policy(k.split("/")[0]) == pol:
                    print(f"  speed-up {k}: {ratio:.2f}x")
    print(json.dumps(results))


def note(b: dict) -> str:
    """The notes column: the top-k store's cost, or what on-policy sampling took."""
    if "store_seconds" in b:
        return f"store built in {b['store_seconds']:.1f} s, {b['store_bytes_per_token']:.0f} B/token"
    if "sampled_tokens" in b:
        return f"{b['sampled_tokens']:,} tokens sampled in {b['sampling_seconds']:.1f} s (all steps)"
    return ""


if __name__ == "__main__":
    main()
