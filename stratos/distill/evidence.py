"""Summarise a distillation comparison: one row per condition, accuracy over seeds.

    python -m stratos.distill.evidence outputs/kd_evidence/runs [--teacher DIR] [--baseline a_labels_only]

Reads `<runs>/<condition>/seed<N>/{distill,evaluate}/manifest.json` (as written by
`launchers/kd_evidence.sh`, or any runs laid out that way) and prints a Markdown table: test
accuracy mean +- sample std over seeds, each seed's value, the paired difference to the baseline
condition (same seeds), steps, training seconds and tokens/s, and the top-k store's bytes/token.
Seeds still running or failed are listed, never averaged in.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics

from stratos.artifacts import Manifest, exists


def _manifest(run: str, stage: str) -> Manifest | None:
    url = os.path.join(run, stage, "manifest.json")
    return Manifest.load(url) if exists(url) else None


def collect(runs_dir: str) -> dict[str, dict[int, dict]]:
    """condition -> seed -> metrics of finished runs (missing stages => absent)."""
    out: dict[str, dict[int, dict]] = {}
    for run in sorted(glob.glob(os.path.join(runs_dir, "*", "seed*"))):
        if not os.path.isdir(run):
            continue
        cond, seed = os.path.basename(os.path.dirname(run)), int(os.path.basename(run)[4:])
        ev, di = _manifest(run, "evaluate"), _manifest(run, "distill")
        out.setdefault(cond, {})
        if ev is not None and di is not None:
            out[cond][seed] = {**di.metrics, **ev.metrics}
    return out


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def table(results: dict[str, dict[int, dict]], baseline: str, teacher_acc: float | None = None) -> str:
    lines = ["| condition | seeds | test accuracy (mean ± std) | per seed | Δ vs " + baseline + " (paired) | steps | "
             "train s | tokens/s | store B/token |", "|---|---|---|---|---|---|---|---|---|"]
    base = results.get(baseline, {})
    for cond, by_seed in sorted(results.items()):
        seeds = sorted(by_seed)
        if not seeds:
            lines.append(f"| {cond} | 0 | (no finished run) | | | | | | |")
            continue
        acc = [by_seed[s]["evaluate/test/accuracy"] for s in seeds]
        m, sd = _mean_std(acc)
        paired = [by_seed[s]["evaluate/test/accuracy"] - base[s]["evaluate/test/accuracy"] for s in seeds if s in base]
        delta = "—" if cond == baseline or not paired else "{:+.1f} ± {:.1f} pts (n={})".format(
            100 * _mean_std(paired)[0], 100 * _mean_std(paired)[1], len(paired))
        per = " / ".join(f"{100 * a:.1f}" for a in acc)
        first = by_seed[seeds[0]]
        secs = statistics.fmean(by_seed[s]["distill/seconds"] for s in seeds)
        tps = statistics.fmean(by_seed[s]["distill/tokens_per_s"] for s in seeds)
        bpt = first.get("distill/topk/bytes_per_token")
        lines.append(f"| {cond} | {len(seeds)} | {100 * m:.1f} ± {100 * sd:.1f} % | {per} | {delta} | "
                     f"{first['distill/steps']} | {secs:.0f} | {tps:,.0f} | {'' if bpt is None else f'{bpt:.0f}'} |")
    if teacher_acc is not None:
        lines.append(f"\nTeacher: {100 * teacher_acc:.1f} % test accuracy.")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs_dir")
    p.add_argument("--teacher", help="the teacher's model dir (<run>/distill/model): its test accuracy is shown")
    p.add_argument("--baseline", default="a_labels_only")
    a = p.parse_args(argv)
    if not os.path.isdir(a.runs_dir):
        raise SystemExit(f"error: {a.runs_dir} is not a directory (expected <runs>/<condition>/seed<N>/)")
    teacher_acc = None
    if a.teacher:
        ev = _manifest(os.path.dirname(os.path.dirname(os.path.abspath(a.teacher))), "evaluate")
        teacher_acc = ev.metrics.get("evaluate/test/accuracy") if ev else None
    print(table(collect(a.runs_dir), a.baseline, teacher_acc))


if __name__ == "__main__":
    main()
