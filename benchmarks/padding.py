"""Two ways not to pay for padding, on real runs: length slices (`trainer.length_slices`, on by
default) and length-grouped batches (`trainer.group_by_length`, off by default), against neither.

    python -m benchmarks.padding [--task mahjong] [--steps 150] [--threads 2] [--out DIR]

Runs the CLI's data + distill + evaluate stages once per variant, one fresh process each, with
identical settings except how padding is handled: the task's default student trained on its verified
rationales (`strategy=injection` without the corpus: no teacher, the task engine's rationales),
`--steps` steps.
  unsliced  trainer.length_slices=1: one forward over each padded batch (what every trainer does)
  sliced    the default: each batch's forward runs on <= 4 length-sorted slices, each trimmed to its
            longest row; same batches, same loss, less padding computed (stratos/distill/slices.py)
  grouped   trainer.group_by_length=true: HF's megabatch scheme changes which rows share a batch
Prints, per variant, training seconds, steps/s, real (non-padding) tokens/s, the share of padding
in the batches and in what the forwards computed, the final validation loss and test accuracy;
then each variant's speed-up over `unsliced`. Slices keep every batch as it was, so loss and
accuracy should match `unsliced` up to float noise; grouping makes batches homogeneous in length,
and where length tracks the answer (Mahjong: more waits, longer rationale) each step's gradient
sees a skewed slice of the task: the loss and accuracy columns show that cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

VARIANTS = {
    "unsliced": ["trainer.length_slices=1"],
    "sliced": [],
    "grouped": ["trainer.group_by_length=true"],
}


def run_variant(out: str, task: str, steps: int, threads: int, variant: str) -> dict:
    run_dir = os.path.join(out, variant)
    one_mix = ["task.curriculum=[]"] if task == "mahjong" else []  # as measured, before the default curriculum
    cmd = [sys.executable, "-m", "stratos", f"+task={task}", *one_mix, "strategy=injection", "strategy.injection.corpus_weight=0",
           f"trainer.max_steps={steps}", "trainer.max_minutes=0", f"trainer.num_threads={threads}",
           "trainer.progress_bar=false", f"trainer.val_every_n_steps={steps}", f"trainer.checkpoint_every_n_steps={steps}",
           *VARIANTS[variant], "pipeline.stages=[data,distill,evaluate]",
           f"paths.output_root={out}", f"hydra.run.dir={run_dir}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(os.path.join(run_dir, "distill", "manifest.json")) as f:
        m = json.load(f)["metrics"]
    with open(os.path.join(run_dir, "evaluate", "manifest.json")) as f:
        acc = json.load(f)["metrics"]["evaluate/test/accuracy"]
    return {"seconds": m["distill/seconds"], "steps": m["distill/steps"], "tokens_per_s": m["distill/tokens_per_s"],
            "val_loss": m["distill/val/loss"], "test_accuracy": acc,
            "padding": m["distill/padding_share"], "computed_padding": m["distill/computed_padding_share"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="mahjong")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--out", default=None, help="run directories (default: a temporary one)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="stratos_padding_")
    res = {}
    for variant in args.variants:
        res[variant] = r = run_variant(out, args.task, args.steps, args.threads, variant)
        print(f"{variant:<9} {r['seconds']:7.1f} s  {r['steps'] / r['seconds']:6.2f} steps/s  "
              f"{r['tokens_per_s']:9,.0f} real tokens/s  padding {100 * r['padding']:5.1f} % in batches, "
              f"{100 * r['computed_padding']:5.1f} % computed  val loss {r['val_loss']}  "
              f"test accuracy {100 * r['test_accuracy']:.1f} %", flush=True)
    if "unsliced" in res:
        for variant in res:
            if variant != "unsliced":
                print(f"speed-up of {variant} over unsliced: {res['unsliced']['seconds'] / res[variant]['seconds']:.2f}x")
    print(f"(task {args.task}, {args.steps} steps, {args.threads} threads; runs in {out})")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
