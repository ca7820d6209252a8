"""On-policy vs off-policy KD on Mahjong or math (CPU): with an imperfect white-box teacher, and with the verifier.

    python -m benchmarks.on_policy --seeds 0 1 2                      # teacher + 5 conditions x 3 seeds
    python -m benchmarks.on_policy --seeds 0 1 2 --conditions off_policy on_policy --teacher DIR
    python -m benchmarks.on_policy --seeds 0 1 2 --task gsm8k         # generated math: its steps are judged too

Every run is a normal CLI run (data -> distill -> evaluate), laid out as `benchmarks/cross_tokenizer.py` lays out
its runs (`<out>/runs/<condition>/seed<N>/`), so `python -m stratos.distill.evidence <out>/runs --baseline
off_policy` prints the same table for the white-box pair.

The imperfect teacher: the default student recipe (tiny_llama h128/L4, its byte-level BPE of 384 tokens) trained
only `--teacher-steps` steps at batch `--teacher-batch` on the verified rationales (`strategy=injection` without a
corpus: no teacher of its own), so it is student-sized and far from perfect (its test accuracy is printed).
Every student: the same recipe from scratch, taking the teacher's tokenizer (logit KD applies), `--steps` steps at
batch `--batch`, one seed per group of runs. Conditions (paired with the condition in brackets):
  off_policy       `strategy=alignment`, logit KD on the verified rationales (T = 2, kd_weight 0.5), rate 0
  on_policy        the same with `strategy.alignment.on_policy.rate=0.5`: half the rows are the student's samples,
                   scored by the teacher's logits (KD only on them)                                 [off_policy]
  on_policy_full   rate 1: GKD's fully on-policy setting, no CE on data at all                      [off_policy]
  verifier_off     `teacher=task_engine strategy=alignment`: CE on the engine's verified rationales, rate 0
  verifier         the same with rate 0.5: half the rows are the student's samples, judged line by line by the
                   task, trained on their right leading lines + the engine's continuation         [verifier_off]
Rollouts are sampled at `--sample-temperature`, up to `--max-new-tokens` tokens (0 = the task's budget: 192 tokens
on Mahjong).
Prints per run: test accuracy, held-out CE (nats per token of the verified val rationales, the same tokenizer for
every condition), sampled tokens/s, training seconds; then per condition the mean ± sample std over seeds and the
paired differences to its pair (same seeds: condition - pair).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from benchmarks.evidence_runs import add_run_args, common, ensure_run, eval_metrics, load_run, mean_std, out_dir, \
    run_grid

ON = "strategy.alignment.on_policy"
CONDITIONS = {  # condition -> (teacher: "trained" | "engine", overrides)
    "off_policy": ("trained", []),
    "on_policy": ("trained", [f"{ON}.rate=0.5"]),
    "on_policy_full": ("trained", [f"{ON}.rate=1.0"]),
    "verifier_off": ("engine", []),
    "verifier": ("engine", [f"{ON}.rate=0.5"]),
}
PAIRS = {"on_policy": "off_policy", "on_policy_full": "off_policy", "verifier": "verifier_off"}
DEFAULT = ["off_policy", "on_policy", "on_policy_full", "verifier_off", "verifier"]


def teacher_args(cond: str, teacher_dir: str) -> list[str]:
    """The teacher of a condition: the briefly trained white-box checkpoint, or the task engine."""
    kind, _ = CONDITIONS[cond]
    if kind == "engine":
        return ["teacher=task_engine"]
    return ["teacher=tiny_teacher", f"teacher.name_or_path={teacher_dir}"]


def task_common(a, steps: int, batch: int) -> list[str]:
    """The evidence benchmarks' run settings (benchmarks/evidence_runs.py), on `--task`."""
    return common(a, steps, batch, task=a.task)


def run_args(a, cond: str, teacher_dir: str, seed: int) -> list[str]:
    return [*task_common(a, a.steps, a.batch), *teacher_args(cond, teacher_dir), "strategy=alignment",
            f"{ON}.temperature={a.sample_temperature}", f"{ON}.max_new_tokens={a.max_new_tokens}",
            *CONDITIONS[cond][1], f"seed={seed}"]


def train_teacher(a) -> str:
    run_dir = os.path.join(a.out, "teacher")
    ensure_run([*task_common(a, a.teacher_steps, a.teacher_batch), "strategy=injection",
                "strategy.injection.corpus_weight=0"], run_dir)
    return os.path.join(run_dir, "distill", "model")


def read_run(run_dir: str) -> dict:
    di, ev, st, val_ce = load_run(run_dir)
    m = di.metrics
    return {"mode": st["mode"], "on_policy": st.get("on_policy") or {}, "accuracy": ev.metrics["evaluate/test/accuracy"],
            "val_ce": val_ce, "seconds": m["distill/seconds"], "steps": m["distill/steps"],
            "sampled_tokens_per_s": m.get("distill/on_policy/tokens_per_s"),
            "sampled_tokens": m.get("distill/on_policy/sampled_tokens"),
            "lines_ok_share": m.get("distill/on_policy/lines_ok_share")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["mahjong", "gsm8k"], default="mahjong")
    ap.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=DEFAULT)
    ap.add_argument("--teacher", help="an HF model dir to use as the white-box teacher instead of training one")
    ap.add_argument("--sample-temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=0, help="rollout length (0 = the task's budget)")
    # threads 1: a decode step of these tiny models is a few small ops, and on a shared 2-core machine 2 threads spent
    # their time in barriers: the same 10-step on-policy run took 208 s at 2 threads, 1.1 s at 1 (identical loss)
    add_run_args(ap, teacher_steps=300, teacher_batch=32, n_val=100, threads=1,
                 teacher_steps_help="brief: an imperfect teacher")
    a = ap.parse_args(argv)
    a.out = out_dir(a, "stratos_onpolicy_")
    t0 = time.time()
    needs_teacher = any(CONDITIONS[c][0] == "trained" for c in a.conditions)
    teacher = a.teacher or (train_teacher(a) if needs_teacher else "")

    def line(cond: str, seed: int, r: dict) -> str:
        op = r["on_policy"]
        return (f"{cond:<15} seed {seed}  mode {r['mode']:<9} test accuracy {100 * r['accuracy']:5.1f} %  "
                f"held-out CE {r['val_ce']:.4f}  {r['steps']} steps in {r['seconds']:.0f} s"
                + (f"  lambda {op['rate']} ({op['scorer']}): {r['sampled_tokens']} tokens sampled at "
                   f"{r['sampled_tokens_per_s']:.0f} tokens/s" if op else "")
                + (f", {100 * r['lines_ok_share']:.1f} % of judged lines right" if r["lines_ok_share"] is not None
                   else ""))

    res = run_grid(a.out, a.seeds, a.conditions, lambda cond, seed: run_args(a, cond, teacher, seed), read_run, line)
    if needs_teacher and not a.teacher:
        acc = eval_metrics(os.path.join(a.out, "teacher"))["evaluate/test/accuracy"]
        print(f"teacher: {a.teacher_steps} steps at batch {a.teacher_batch}, test accuracy {100 * acc:.1f} %")
    print("\n| condition | pair | test accuracy (mean ± std) | held-out CE, nats/token (mean ± std) | "
          "Δ accuracy vs pair (paired, pts) | Δ CE vs pair (paired) | sampled tokens/s |\n|---|---|---|---|---|---|---|")
    for cond, by_seed in res.items():
        acc = [100 * by_seed[s]["accuracy"] for s in a.seeds]
        ce = [by_seed[s]["val_ce"] for s in a.seeds]
        pair = PAIRS.get(cond) if PAIRS.get(cond) in res else None
        d_acc = d_ce = "—"
        if pair:
            d_acc = mean_std([100 * (by_seed[s]["accuracy"] - res[pair][s]["accuracy"]) for s in a.seeds], 1, True)
            d_ce = mean_std([by_seed[s]["val_ce"] - res[pair][s]["val_ce"] for s in a.seeds], 3, True)
        tps = [by_seed[s]["sampled_tokens_per_s"] for s in a.seeds if by_seed[s]["sampled_tokens_per_s"]]
        per = " / ".join(f"{x:.1f}" for x in acc)
        print(f"| {cond} | {pair or '—'} | {mean_std(acc, 1)} % ({per}) | {mean_std(ce, 3)} | {d_acc} | {d_ce} | "
              f"{f'{statistics.fmean(tps):.0f}' if tps else '—'} |")
    print(f"\n({len(a.seeds)} seeds, {a.steps} steps at batch {a.batch}, rollouts at T={a.sample_temperature} up to "
          f"{a.max_new_tokens or 'the task budget of'} new tokens; {time.time() - t0:.0f} s in all; runs in {a.out})")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
