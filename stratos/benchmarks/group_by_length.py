"""Length-grouped batching (`trainer.group_by_length=true`) vs plain shuffled batches, on real runs.

    python -m stratos.benchmarks.group_by_length [--task gsm8k] [--steps 150] [--threads 2] [--out DIR]

Runs the CLI's data + distill + evaluate stages twice, one fresh process each, with identical settings except the
batching: the task's default student trained on its verified rationales (`strategy=injection` without the
corpus: no teacher, the task engine's rationales), `--steps` steps. Prints, per variant,
training seconds, steps/s, real (non-padding) tokens/s, the share of padding in the batches and the
final validation loss and test accuracy; then the speed-up of grouping over plain batches. Grouping
removes padding, so the gain tracks how much the task's example lengths vary. It also makes batches
homogeneous in length, and where length tracks the answer (Mahjong: more waits, longer rationale)
each step's gradient sees a skewed slice of the task: the loss and accuracy columns show that cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def run_variant(out: str, task: str, steps: int, threads: int, grouped: bool) -> dict:
    run_dir = os.path.join(out, "grouped" if grouped else "plain")
    cmd = [sys.executable, "-m", "stratos", f"+task={task}", "strategy=injection", "strategy.injection.corpus_weight=0",
           f"trainer.max_steps={steps}", "trainer.max_minutes=0", f"trainer.num_threads={threads}",
           "trainer.progress_bar=false", f"trainer.val_every_n_steps={steps}", f"trainer.checkpoint_every_n_steps={steps}",
           f"trainer.group_by_length={str(grouped).lower()}", "pipeline.stages=[data,distill,evaluate]",
           f"paths.output_root={out}", f"hydra.run.dir={run_dir}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(os.path.join(run_dir, "distill", "manifest.json")) as f:
        m = json.load(f)["metrics"]
    with open(os.path.join(run_dir, "evaluate", "manifest.json")) as f:
        acc = json.load(f)["metrics"]["evaluate/test/accuracy"]
    return {"seconds": m["distill/seconds"], "steps": m["distill/steps"], "tokens_per_s": m["distill/tokens_per_s"],
            "val_loss": m["distill/val/loss"], "test_accuracy": acc,
            "padding": m["distill/padding_share"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="gsm8k")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="run directories (default: a temporary one)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="stratos_gbl_")
    res = {}
    for grouped in (False, True):
        res[grouped] = r = run_variant(out, args.task, args.steps, args.threads, grouped)
        print(f"{'grouped' if grouped else 'plain  '}  {r['seconds']:7.1f} s  {r['steps'] / r['seconds']:6.2f} steps/s  "
              f"{r['tokens_per_s']:9,.0f} real tokens/s  padding {100 * r['padding']:5.1f} %  "
              f"val loss {r['val_loss']}  test accuracy {100 * r['test_accuracy']:.1f} %", flush=True)
    print(f"speed-up of group_by_length: {res[False]['seconds'] / res[True]['seconds']:.2f}x "
          f"(task {args.task}, {args.steps} steps, {args.threads} threads; runs in {out})")


if __name__ == "__main__":
    main()
