"""Cross-tokenizer logit KD vs sequence-level KD, for a student with its own tokenizer (Mahjong, CPU).

    python -m benchmarks.cross_tokenizer --seeds 0 1 2                          # teacher + 3 conditions x 3 seeds
    python -m benchmarks.cross_tokenizer --seeds 0 1 2 --conditions xtok sequence --teacher DIR

Every run is a normal CLI run (data -> distill -> evaluate), laid out as `launchers/kd_evidence.sh` lays out
its runs (`<out>/runs/<condition>/seed<N>/`), so `python -m stratos.distill.evidence <out>/runs --baseline
sequence` prints the same table.

The teacher: the default student recipe (tiny_llama h128/L4, its own byte-level BPE of 384 tokens) trained
`--teacher-steps` steps at batch `--teacher-batch` on the verified rationales (`strategy=injection` without a corpus: no teacher).
Every student: a Llama h64/L2 whose byte-level BPE is trained on the same text at `--student-vocab` tokens
(`student.tokenizer_from=train`): another vocabulary, so before cross-tokenizer KD Stratos refused logit KD
for it. Same data, `--steps` steps at batch `--batch`, one seed per pair of runs. Conditions:
  xtok        `strategy=alignment`, mode auto -> cross_tokenizer (checked in strategy.json): CE on the
              verified rationales + KD_x from the live teacher at aligned spans (defaults: T = 2,
              kd_weight 0.5, shared_weight 1, uld_weight 1, ULD over the full distributions)
  sequence    `strategy.alignment.mode=sequence`: CE on the teacher's own rationales, kept when the task's
              verifier accepts them (what Stratos did for a student with another vocabulary)
  rationales  mode cross_tokenizer at kd_weight 0: CE on the verified rationales alone, so that
              xtok - rationales is the KD term's own contribution and rationales - sequence the text's
Further conditions (`--conditions`, not run by default): `xtok_t1` (T = 1), `xtok_unmatched` (ULD over the
unmatched tokens only), `xtok_no_uld` (uld_weight 0), `xtok_on_policy` (half the rows the student's own samples,
the teacher reading their text in its own tokens: stratos/distill/xtok_rollouts.py), and two controls whose student takes the teacher's
tokenizer, so plain logit KD applies: `same_vocab_logit` and `same_vocab_rationales` (kd_weight 0). Their
held-out CE is per token of another tokenizer: compare the two controls with each other, not with the rest.
Prints per run: test accuracy, held-out CE (the val split's verified rationales, nats per student token:
the same tokenizer for every condition of a seed), kept teacher rationales, training seconds; then per
condition the mean ± sample std over seeds and the paired differences to `--baseline` (default `sequence`,
same seeds: condition - baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks.evidence_runs import add_run_args, common, ensure_run, eval_metrics, load_run, mean_std, out_dir, \
    run_grid

CONDITIONS = {
    "xtok": [],
    "sequence": ["strategy.alignment.mode=sequence"],
    "rationales": ["strategy.alignment.mode=cross_tokenizer", "strategy.alignment.kd_weight=0"],
    "xtok_t1": ["strategy.alignment.temperature=1"],
    "xtok_unmatched": ["strategy.alignment.cross_tokenizer.uld_over=unmatched"],
    "xtok_no_uld": ["strategy.alignment.cross_tokenizer.uld_weight=0"],
    "xtok_on_policy": ["strategy.alignment.on_policy.rate=0.5"],
    # controls: the student takes the teacher's tokenizer, so plain logit KD applies (another tokenizer: compare
    # these two with each other, not with the rows above)
    "same_vocab_logit": ["student.tokenizer_from=teacher", "strategy.alignment.mode=logit"],
    "same_vocab_rationales": ["student.tokenizer_from=teacher", "strategy.alignment.mode=logit",
                              "strategy.alignment.kd_weight=0"],
}
DEFAULT = ["xtok", "sequence", "rationales"]
STUDENT = ["student.arch.hidden=64", "student.arch.layers=2", "student.arch.heads=2",
           "student.arch.kv_heads=2", "student.arch.intermediate=128"]


def student_tokenizer(cond: str) -> list[str]:
    """The student trains its own tokenizer unless the condition says otherwise (the same-vocabulary controls)."""
    return [] if any(o.startswith("student.tokenizer_from") for o in CONDITIONS[cond]) else \
        ["student.tokenizer_from=train"]


def train_teacher(a) -> str:
    run_dir = os.path.join(a.out, "teacher")
    ensure_run([*common(a, a.teacher_steps, a.teacher_batch), "strategy=injection", "strategy.injection.corpus_weight=0"],
               run_dir)
    return os.path.join(run_dir, "distill", "model")


def read_run(run_dir: str) -> dict:
    di, ev, st, val_ce = load_run(run_dir)
    return {"mode": st["mode"], "accuracy": ev.metrics["evaluate/test/accuracy"], "val_ce": val_ce,
            "kept": di.metrics.get("strategy/kept"), "seconds": di.metrics["distill/seconds"],
            "steps": di.metrics["distill/steps"], "aligned_share": di.metrics.get("strategy/xtok_aligned_share"),
            "shared_tokens": di.metrics.get("strategy/xtok_shared_tokens"),
            "rollout_aligned_share": di.metrics.get("distill/on_policy/aligned_share")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=DEFAULT)
    ap.add_argument("--teacher", help="an HF model dir to use as the teacher instead of training one")
    ap.add_argument("--student-vocab", type=int, default=448)
    ap.add_argument("--baseline", default="sequence", help="the condition paired differences are taken against")
    add_run_args(ap, teacher_steps=1200, teacher_batch=64, n_val=100, threads=2)
    a = ap.parse_args(argv)
    a.out = out_dir(a, "stratos_xtok_")
    t0 = time.time()
    teacher = a.teacher or train_teacher(a)
    base = [*common(a, a.steps, a.batch), "teacher=tiny_teacher", f"teacher.name_or_path={teacher}", "strategy=alignment",
            *STUDENT, f"student.tokenizer_vocab={a.student_vocab}"]

    def line(cond: str, seed: int, r: dict) -> str:
        return (f"{cond:<10} seed {seed}  mode {r['mode']:<15} test accuracy {100 * r['accuracy']:5.1f} %  "
                f"held-out CE {r['val_ce']:.4f}  kept {r['kept']}  {r['steps']} steps in {r['seconds']:.0f} s"
                + (f"  aligned {100 * r['aligned_share']:.1f} % of tokens, {r['shared_tokens']} shared tokens"
                   if r["aligned_share"] is not None else "")
                + (f"  samples aligned {100 * r['rollout_aligned_share']:.1f} %"
                   if r.get("rollout_aligned_share") is not None else ""))

    res = run_grid(a.out, a.seeds, a.conditions,
                   lambda cond, seed: [*base, *student_tokenizer(cond), *CONDITIONS[cond], f"seed={seed}"],
                   read_run, line)
    if not a.teacher:
        acc = eval_metrics(os.path.join(a.out, "teacher"))["evaluate/test/accuracy"]
        print(f"teacher: {a.teacher_steps} steps at batch {a.teacher_batch}, test accuracy {100 * acc:.1f} %")
    base_c = a.baseline if a.baseline in res else None
    print(f"\n| condition | test accuracy (mean ± std) | held-out CE, nats/token (mean ± std) | "
          f"Δ accuracy vs {base_c} (paired, pts) | Δ CE vs {base_c} (paired) |\n|---|---|---|---|---|")
    for cond, by_seed in res.items():
        acc = [100 * by_seed[s]["accuracy"] for s in a.seeds]
        ce = [by_seed[s]["val_ce"] for s in a.seeds]
        d_acc = d_ce = "—"
        if base_c and cond != base_c:
            d_acc = mean_std([100 * (by_seed[s]["accuracy"] - res[base_c][s]["accuracy"]) for s in a.seeds], 1, True)
            d_ce = mean_std([by_seed[s]["val_ce"] - res[base_c][s]["val_ce"] for s in a.seeds], 3, True)
        per = " / ".join(f"{x:.1f}" for x in acc)
        print(f"| {cond} | {mean_std(acc, 1)} % ({per}) | {mean_std(ce, 3)} | {d_acc} | {d_ce} |")
    print(f"\n({len(a.seeds)} seeds, {a.steps} steps at batch {a.batch}, student vocab {a.student_vocab}; "
          f"{time.time() - t0:.0f} s in all; runs in {a.out})")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
