"""The flagship student's recipe, measured: what buys balanced-split accuracy per CPU-minute (issue 14).

    python -m benchmarks.mahjong_recipes --seeds 0 1 2                      # every condition, 3 seeds
    python -m benchmarks.mahjong_recipes --conditions proof flat_mix --threads 1 --out /work/bench/recipes
    python -m benchmarks.mahjong_recipes --report --out /work/bench/recipes    # the table of what has finished

Every condition is the default run's recipe as it was until 2026-12-06 -- `tiny_llama` (0.9M parameters),
sequence-level alignment on the rules engine's verified rationales, batch 64, 50,000 training hands of one mix
(`task.curriculum=[]`), `--steps` steps (default 1,250: what the default plan chose on a fresh cache) -- with one
thing changed:

  proof      that recipe itself (`task.rationale_format=proof`: one line per winning tile with its groups)
  search     rationale format `search`: one line per candidate tile, its groups or `no`
  suits      rationale format `suits`: the suits a winning tile can land in, then that search
  bytes      one token per byte (`student.tokenizer_vocab=259`): `123m` is 4 tokens, not 1-2
  flat_mix   a flattened training mix of winning-tile counts (`task.wait_distribution`: 26/25/22/16/8/2/0.8/0.4 %
             for 1..8), the flattest the hand space allows, instead of the natural mix (61 % have 2)
  curriculum     a staged curriculum (`task.curriculum`, stratos/distill/curriculum.py): the first half of the rows
                 and steps on the natural mix, the second half on the flat_mix one (each stage its own 25,000 hands)
  curriculum_rev the same stages the other way round: flat first, natural last
  curriculum_late three quarters of the rows and steps on the natural mix, the last quarter on the flat one: the
                 default since 2026-12-06 (MahjongTaskConfig.curriculum, stratos/config/task.py)
  steps_2x   twice the steps
  curriculum_late_2x `curriculum_late` at twice the steps (paired with `steps_2x`, the same steps without it)
  mini       the `mini_llama` student (hidden 256, 5 layers: 4.6x the parameters), same steps
  vote8      the `proof` models answering by a majority vote of 8 samples at T = 0.7 (stratos/evaluate/vote.py):
             no training, the proof run's model and test splits
  lr_2x      `curriculum_late` (the default's recipe) at twice the peak learning rate (6e-3; paired with it)
  lr_4x      the same at four times (1.2e-2)
  lr_half    the same at half (1.5e-3)
  batch_32   `curriculum_late` with batches of 32 at twice the steps: the same hands, twice the updates

Scored by the evaluate stage on the balanced test split (500 hands, equal per number of winning tiles 0..9, as
few as exist for 9) and the natural one; per condition: mean ± sd over seeds, the paired difference to `proof`,
accuracy per number of winning tiles (the paired difference is to `steps_2x` for `curriculum_late_2x`), the share
of outputs without a readable answer line (the most that constrained decoding of the answer line could fix), the
share of the student's `tile: groups` lines that are valid proofs (proof-format runs; the rules engine's text
verifier measures, it never answers), training seconds and the whole run's seconds. Finished runs are reused
(`<out>/runs/<condition>/seed<N>`), so a re-run resumes; two benchmark processes with disjoint `--conditions` at
`--threads 1` share a 2-core machine (seconds are then those of a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from benchmarks.evidence_runs import ensure_run, load_run, mean_std, out_dir
from stratos.config.task import FLAT_WAITS

# The flattest training mix the hand space allows at 50,000 hands: 1-5 waits as even as rejection sampling can
# fill them, and every 6+-wait hand it can find -- only 471 basic hands have 7 winning tiles and 282 have 8
# (stratos/tasks/mahjong/synthesis.py tail_hands), 55 of each go to the balanced test split. (1/8 each is refused:
# 5- and 6-wait hands run out of draws.) Keys are strings "1".."8" (shares are normalised).
FLAT = {int(k): v for k, v in FLAT_WAITS.items()}  # 26/25/22/16/8/2/0.8/0.4 % for 1..8
FLAT_MIX = [f"+task.wait_distribution.{k}={v}" for k, v in FLAT.items()]
_FLAT_STAGE = "{share:1,wait_distribution:{" + ",".join(f"{k}:{v}" for k, v in FLAT.items()) + "}}"
CURRICULUM = [f"task.curriculum=[{{share:1}},{_FLAT_STAGE}]"]  # natural half, then flat half
CURRICULUM_REV = [f"task.curriculum=[{_FLAT_STAGE},{{share:1}}]"]  # flat half, then natural half
CURRICULUM_LATE = [f"task.curriculum=[{{share:3}},{_FLAT_STAGE}]"]  # natural 3/4, then flat 1/4
CONDITIONS = {
    "proof": [],
    "search": ["task.rationale_format=search"],
    "suits": ["task.rationale_format=suits"],
    "bytes": ["student.tokenizer_vocab=259"],
    "flat_mix": FLAT_MIX,
    "curriculum": CURRICULUM,
    "curriculum_rev": CURRICULUM_REV,
    "curriculum_late": CURRICULUM_LATE,
    "steps_2x": None,  # filled from --steps
    "curriculum_late_2x": CURRICULUM_LATE,  # at twice the steps
    "mini": ["student=mini_llama"],
    "vote8": None,  # evaluation of the proof runs
    "lr_2x": [*CURRICULUM_LATE, "trainer.lr=6e-3"],
    "lr_4x": [*CURRICULUM_LATE, "trainer.lr=1.2e-2"],
    "lr_half": [*CURRICULUM_LATE, "trainer.lr=1.5e-3"],
    "batch_32": [*CURRICULUM_LATE, "trainer.batch_size=32"],  # at twice the steps: the same hands seen
}
VOTE_K, VOTE_T = 8, 0.7
TWICE = ("steps_2x", "curriculum_late_2x", "batch_32")  # conditions at 2 x --steps
# the paired difference is to this condition (default: proof)
BASELINE = {"curriculum_late_2x": "steps_2x", "lr_2x": "curriculum_late", "lr_4x": "curriculum_late",
            "lr_half": "curriculum_late", "batch_32": "curriculum_late"}


def overrides(a, cond: str, seed: int) -> list[str]:
    steps = a.steps * (2 if cond in TWICE else 1)
    extra = CONDITIONS[cond] or []
    if not any(o.startswith("task.curriculum=") for o in extra):  # one mix: the default until 2026-12-06
        extra = ["task.curriculum=[]", *extra]
    return ["+task=mahjong", "strategy=alignment", "strategy.alignment.mode=sequence", f"trainer.max_steps={steps}",
            "trainer.max_minutes=0", f"trainer.num_threads={a.threads}", "trainer.progress_bar=false",
            f"trainer.checkpoint_every_n_steps={steps}", "pipeline.stages=[data,distill,evaluate]", f"seed={seed}",
            f"paths.output_root={a.out}", *extra]


def vote_run(a, seed: int) -> str:
    """Score the proof run of `seed` by an 8-sample vote; its metrics in runs/vote8/seed<N>/evaluate/."""
    import torch

    from stratos import artifacts
    from stratos.artifacts import Manifest, StageContext
    from stratos.evaluate.stage import load_model, score_split
    from stratos.tasks.mahjong.task import MahjongTask

    src = os.path.join(a.out, "runs", "proof", f"seed{seed}")
    ensure_run(overrides(a, "proof", seed), src)
    dst = os.path.join(a.out, "runs", "vote8", f"seed{seed}")
    done = os.path.join(dst, "evaluate", "metrics.json")
    if os.path.exists(done):
        return dst
    torch.set_num_threads(a.threads)
    data = Manifest.load(os.path.join(src, "data", "manifest.json"))
    model, tok = load_model(os.path.join(src, "distill", "model"))
    task = MahjongTask(name="mahjong")
    ctx = StageContext(run_dir=dst, stage="evaluate", config_hash="vote8", inputs={})
    t0 = time.time()
    metrics = {}
    for split in ("test", "test_natural"):
        rows = artifacts.read_jsonl(data.path(f"{split}.jsonl"))
        metrics.update(score_split(task, model, tok, rows, split, task.max_new_tokens, 64, ctx, VOTE_K, VOTE_T, seed))
    metrics["seconds"] = round(time.time() - t0, 1)
    artifacts.write_json(done, metrics)
    return dst


def unreadable(run_dir: str) -> float:
    """Share of balanced-test outputs without a readable answer line: all that constrained decoding of the answer
    line could turn from wrong to (possibly) right."""
    from stratos import artifacts
    from stratos.tasks.mahjong.task import MahjongTask

    task = MahjongTask(name="mahjong")
    preds = artifacts.read_jsonl(os.path.join(run_dir, "evaluate", "predictions.jsonl"))
    return sum(task.extract(p["output"]) is None for p in preds) / max(1, len(preds))


def proof_lines(run_dir: str) -> float | None:
    """Proof-format outputs on the balanced test: the share of `tile: groups` lines whose groups really are hand +
    tile in a winning shape (the rules engine's text verifier, used here only to measure, never to answer).
    None for other formats."""
    from omegaconf import OmegaConf

    from stratos import artifacts
    from stratos.tasks.mahjong.rationale import RationaleError, verify_line
    from stratos.tasks.mahjong.task import parse_hand

    trained = os.path.join(os.path.dirname(run_dir.replace("/vote8/", "/proof/")), os.path.basename(run_dir))
    if OmegaConf.load(os.path.join(trained, "config.yaml")).task.rationale_format != "proof":
        return None  # search / suits: their candidate lines say `no` or name suits, they are not proofs alone
    rows = {r["id"]: r for r in artifacts.read_jsonl(os.path.join(trained, "data", "test.jsonl"))}
    ok = n = 0
    for p in artifacts.read_jsonl(os.path.join(run_dir, "evaluate", "predictions.jsonl")):
        counts = parse_hand(rows[p["id"]]["hand"])
        for line in p["output"].split("\n"):
            if ":" not in line or line.startswith("Answer"):
                continue
            n += 1
            try:
                verify_line(counts, line, "basic")
                ok += 1
            except (RationaleError, ValueError):
                pass
    return ok / n if n else None


def read(run_dir: str, cond: str) -> dict:
    out = {"unreadable": unreadable(run_dir), "valid_lines": proof_lines(run_dir)}
    if cond == "vote8":
        with open(os.path.join(run_dir, "evaluate", "metrics.json")) as f:
            m = json.load(f)
        return {**out, "balanced": m["evaluate/test/accuracy"], "natural": m["evaluate/test_natural/accuracy"],
                "by": m["evaluate/test/by_difficulty"], "train_s": 0.0, "run_s": m["seconds"]}
    di, ev, _, _ = load_run(run_dir)
    m = ev.metrics
    run_s = 0.0
    for stage in ("data", "distill", "evaluate"):
        with open(os.path.join(run_dir, stage, "manifest.json")) as f:
            run_s += float(json.load(f).get("seconds") or 0)
    return {**out, "balanced": m["evaluate/test/accuracy"], "natural": m["evaluate/test_natural/accuracy"],
            "by": m["evaluate/test/by_difficulty"], "train_s": float(di.metrics.get("distill/seconds") or di.seconds or 0),
            "run_s": float(run_s)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--steps", type=int, default=1250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="run directories (default: a temporary one)")
    ap.add_argument("--report", action="store_true",
                    help="start nothing: the table of the runs already finished under --out (seeds may differ)")
    a = ap.parse_args(argv)
    a.out = out_dir(a, "mahjong-recipes-")
    res: dict[str, dict[int, dict]] = {c: {} for c in a.conditions}
    for cond in a.conditions:
        for seed in a.seeds:
            if a.report and not os.path.exists(os.path.join(a.out, "runs", cond, f"seed{seed}", "evaluate",
                                                            "manifest.json")):
                continue
            if cond == "vote8":
                run_dir = vote_run(a, seed)
            else:
                run_dir = os.path.join(a.out, "runs", cond, f"seed{seed}")
                ensure_run(overrides(a, cond, seed), run_dir)
            r = res[cond][seed] = read(run_dir, cond)
            print(f"{cond:9s} seed {seed}: balanced {r['balanced']:.3f}, natural {r['natural']:.3f}, "
                  f"train {r['train_s']:.0f} s, run {r['run_s']:.0f} s", flush=True)
    print(table(res, a.seeds))


def _pct(xs: list) -> str:
    xs = [x for x in xs if x is not None]
    return f"{statistics.fmean(xs) * 100:.0f} %" if xs else "—"


def table(res: dict[str, dict[int, dict]], seeds: list[int]) -> str:
    """Markdown: balanced (mean ± sd), paired delta vs proof (or BASELINE's), natural, per wait count, seconds."""
    waits = sorted({k for c in res.values() for r in c.values() for k in r["by"]}, key=lambda k: int(k.split("=")[-1]))
    head = "| condition | seeds | balanced | Δ vs proof (paired) | natural | " + " | ".join(
        k.split("=")[-1] for k in waits) + " | unreadable | valid proof lines | train s | run s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for cond, runs in res.items():
        base_cond = BASELINE.get(cond, "proof")
        base = res.get(base_cond, {})
        got = [s for s in seeds if s in runs]
        if not got:
            continue
        bal = [runs[s]["balanced"] * 100 for s in got]
        paired = [runs[s]["balanced"] * 100 - base[s]["balanced"] * 100 for s in got if s in base]
        delta = "—" if cond == "proof" or not paired else mean_std(paired, 1, signed=True)
        if base_cond != "proof" and paired:
            delta += f" vs {base_cond}"
        per = [statistics.fmean(runs[s]["by"].get(k, 0.0) for s in got) * 100 for k in waits]
        lines.append(f"| {cond} | {len(got)} | {mean_std(bal, 1)} % | {delta} | "
                     f"{statistics.fmean(runs[s]['natural'] for s in got) * 100:.1f} % | "
                     + " | ".join(f"{p:.0f}" for p in per)
                     + f" | {statistics.fmean(runs[s].get('unreadable', 0.0) for s in got) * 100:.1f} %"
                     + f" | {_pct([runs[s].get('valid_lines') for s in got])}"
                     + f" | {statistics.fmean(runs[s]['train_s'] for s in got):.0f} | "
                     f"{statistics.fmean(runs[s]['run_s'] for s in got):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
