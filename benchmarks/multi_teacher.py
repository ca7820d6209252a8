"""Routed multi-teacher KD vs each teacher alone, on a Mahjong mix where each teacher is strong on another slice (CPU).

    python -m benchmarks.multi_teacher --seeds 0 1 2                      # 2 teachers + 4 conditions x 3 seeds
    python -m benchmarks.multi_teacher --seeds 0 1 2 --conditions routed_auto low_only high_only

Every run is a normal CLI run (data -> distill -> evaluate) in `<out>/runs/<condition>/seed<N>/`.

The two teachers (the default student recipe, tiny_llama h128/L4, `--teacher-steps` steps at batch `--teacher-batch`
on verified rationales, no teacher of their own), each on its own slice of the task, slices being the number of
winning tiles (`MahjongTask.slice_of`):
  low    hands with 0-2 winning tiles (`task.nontenpai_rate` 0.3, waits 1 and 2 equally); `strategy=injection`
         without a corpus, so it trains its own byte-level BPE
  high   hands with 3-7 winning tiles; trained as a `kd_weight=0` student of `low` (`strategy.alignment.mode=logit`),
         which only gives it low's tokenizer: both teachers share one vocabulary, as routed logit KD needs
Every student: a Llama h64/L2 taking the teachers' tokenizer, `--steps` steps at batch `--batch` on one mix that
spans both slices (nontenpai 0.15, waits 1-7), `strategy=alignment` (mode logit: CE on the verified rationales +
KD at T = 2, kd_weight 0.5). Conditions:
  routed_auto   both teachers, `route.by=auto`: the probe measures each teacher on `--probe-n` held-out rows per
                slice and each slice goes to its better teacher (table in routing.json)
  routed_slice  both teachers, `route.by=slice` with the slices they were trained on ({0-2: low, 3+: high})
  low_only      teacher low for every row
  high_only     teacher high for every row
  no_kd         (not run by default) teacher low at kd_weight 0: CE on the verified rationales alone
Prints per run: test accuracy on the balanced test split (every wait count 0-9 equally), accuracy on the low (0-2)
and high (3+) slices, held-out CE (val split, nats per token: one tokenizer for all), routed token shares; then per
condition mean ± sample std over seeds and the paired differences (same seed) to each `--baselines` condition.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks.evidence_runs import add_run_args, common, ensure_run, eval_metrics, load_run, mean_std, out_dir, \
    run_grid

SLICES = {"low": (0, 2), "high": (3, 99)}  # number of winning tiles per slice (inclusive)
TEACHER_DATA = {
    "low": ["task.nontenpai_rate=0.3", "+task.wait_distribution.1=0.5", "+task.wait_distribution.2=0.5"],
    "high": ["task.nontenpai_rate=0", *(f"+task.wait_distribution.{k}={v}" for k, v in
                                        (("3", 0.3), ("4", 0.3), ("5", 0.2), ("6", 0.1), ("7", 0.1)))],
}
STUDENT_DATA = ["task.nontenpai_rate=0.15", *(f"+task.wait_distribution.{k}={v}" for k, v in
                                              (("1", 0.2), ("2", 0.2), ("3", 0.2), ("4", 0.15), ("5", 0.1),
                                               ("6", 0.1), ("7", 0.05)))]
STUDENT = ["student.arch.hidden=64", "student.arch.layers=2", "student.arch.heads=2", "student.arch.kv_heads=2",
           "student.arch.intermediate=128"]


def both(low: str, high: str) -> list[str]:
    return ["+teacher@teachers.low=tiny_teacher", f"teachers.low.name_or_path={low}",
            "+teacher@teachers.high=tiny_teacher", f"teachers.high.name_or_path={high}"]


def one(path: str) -> list[str]:
    return ["teacher=tiny_teacher", f"teacher.name_or_path={path}"]


def condition(cond: str, low: str, high: str, probe_n: int) -> list[str]:
    """The overrides that make condition `cond` (on top of `common` + STUDENT + STUDENT_DATA + strategy=alignment)."""
    return {
        "routed_auto": [*both(low, high), "route.by=auto", f"route.probe_n={probe_n}"],
        "routed_slice": [*both(low, high), "route.by=slice", "++route.slices={0-2: low, 3+: high}"],
        "low_only": one(low),
        "high_only": one(high),
        "no_kd": [*one(low), "strategy.alignment.kd_weight=0"],
    }[cond]


CONDITIONS = ("routed_auto", "routed_slice", "low_only", "high_only", "no_kd")
DEFAULT = ["routed_auto", "routed_slice", "low_only", "high_only"]


def teacher_overrides(a, which: str, low_dir: str | None = None) -> list[str]:
    """The CLI run that trains teacher `which` on its slice (high: a kd_weight=0 student of low, for its tokenizer)."""
    base = [*common(a, a.teacher_steps, a.teacher_batch), *TEACHER_DATA[which]]
    if which == "low":
        return [*base, "strategy=injection", "strategy.injection.corpus_weight=0"]
    return [*base, *one(low_dir), "strategy=alignment", "strategy.alignment.mode=logit",
            "strategy.alignment.kd_weight=0", "student.tokenizer_from=teacher"]


def train_teachers(a) -> dict[str, str]:
    dirs = {}
    for which in ("low", "high"):
        run_dir = os.path.join(a.out, f"teacher_{which}")
        ensure_run(teacher_overrides(a, which, dirs.get("low")), run_dir)
        dirs[which] = os.path.join(run_dir, "distill", "model")
    return dirs


def slice_accuracy(ev: dict, split: str = "test") -> dict[str, float | None]:
    """Accuracy per slice from the evaluate stage's per-wait-count accuracy (buckets "waits=N"), item-weighted."""
    acc, n = ev.get(f"evaluate/{split}/by_difficulty") or {}, ev.get(f"evaluate/{split}/n_by_difficulty") or {}
    out = {}
    for name, (lo, hi) in SLICES.items():
        keys = [k for k in acc if k.split("=")[-1].rstrip("+").isdigit() and lo <= int(k.split("=")[-1].rstrip("+")) <= hi]
        items = sum(n.get(k, 0) for k in keys)
        out[name] = sum(acc[k] * n.get(k, 0) for k in keys) / items if items else None
    return out


def read_run(run_dir: str) -> dict:
    di, ev, st, val_ce = load_run(run_dir)
    shares = {k.rsplit("/", 1)[-1]: v for k, v in di.metrics.items() if k.startswith("distill/teacher_share/")}
    return {"mode": st["mode"], "route": (st.get("routing") or {}).get("assignment"),
            "accuracy": ev.metrics["evaluate/test/accuracy"], **slice_accuracy(ev.metrics),
            "val_ce": val_ce, "shares": shares, "seconds": di.metrics["distill/seconds"],
            "steps": di.metrics["distill/steps"]}


def _fmt_pct(x: float | None) -> str:
    return "  —  " if x is None else f"{100 * x:5.1f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=DEFAULT)
    ap.add_argument("--baselines", nargs="+", default=["low_only", "high_only"])
    ap.add_argument("--teachers", nargs=2, metavar=("LOW", "HIGH"), help="two HF model dirs (one tokenizer) "
                    "instead of training them")
    ap.add_argument("--probe-n", type=int, default=16, help="route.probe_n for routed_auto (held-out rows per slice)")
    add_run_args(ap, teacher_steps=1200, teacher_batch=64, n_val=200, threads=2)
    a = ap.parse_args(argv)
    a.out = out_dir(a, "stratos_multi_teacher_")
    t0 = time.time()
    dirs = dict(zip(("low", "high"), a.teachers)) if a.teachers else train_teachers(a)
    if not a.teachers:
        for which in ("low", "high"):
            ev = eval_metrics(os.path.join(a.out, f"teacher_{which}"))
            s = slice_accuracy(ev)
            print(f"teacher {which}: {a.teacher_steps} steps at batch {a.teacher_batch}, balanced test accuracy "
                  f"{_fmt_pct(ev['evaluate/test/accuracy'])} %  low slice {_fmt_pct(s['low'])} %  high slice "
                  f"{_fmt_pct(s['high'])} %", flush=True)
    base = [*common(a, a.steps, a.batch), *STUDENT, *STUDENT_DATA, "strategy=alignment"]

    def line(cond: str, seed: int, r: dict) -> str:
        return (f"{cond:<12} seed {seed}  mode {r['mode']:<8} test {_fmt_pct(r['accuracy'])} %  low {_fmt_pct(r['low'])} %"
                f"  high {_fmt_pct(r['high'])} %  held-out CE {r['val_ce']:.4f}  {r['steps']} steps in "
                f"{r['seconds']:.0f} s" + (f"  shares {r['shares']}  route {r['route']}" if r["shares"] else ""))

    res = run_grid(a.out, a.seeds, a.conditions,
                   lambda cond, seed: [*base, *condition(cond, dirs["low"], dirs["high"], a.probe_n), f"seed={seed}"],
                   read_run, line)
    metrics = [("accuracy", "test accuracy", 100, 1), ("low", "low slice (0-2)", 100, 1),
               ("high", "high slice (3+)", 100, 1), ("val_ce", "held-out CE", 1, 3)]
    heads = [h for _, h, _, _ in metrics]
    bases = [b for b in a.baselines if b in res]
    print("\n| condition | " + " | ".join(f"{h} (mean ± std)" for h in heads) + " | "
          + " | ".join(f"Δ {h} vs {b} (paired)" for b in bases for h in heads[:3]) + " |")
    print("|---" * (1 + len(heads) + 3 * len(bases)) + "|")
    for cond, by_seed in res.items():
        cells = [mean_std([scale * by_seed[s][k] for s in a.seeds if by_seed[s][k] is not None], d)
                 for k, _, scale, d in metrics]
        for b in bases:
            for k, _, scale, d in metrics[:3]:
                pairs = [scale * (by_seed[s][k] - res[b][s][k]) for s in a.seeds
                         if by_seed[s][k] is not None and res[b][s][k] is not None]
                cells.append("—" if cond == b or not pairs else mean_std(pairs, d, True))
        print(f"| {cond} | " + " | ".join(cells) + " |")
    print(f"\n({len(a.seeds)} seeds, {a.steps} steps at batch {a.batch}; accuracy in % on the balanced test split, "
          f"{a.n_test} hands; {time.time() - t0:.0f} s in all; runs in {a.out})")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
