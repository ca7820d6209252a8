"""Sub-network choice per device class: trade-off score vs highest-accuracy selection (claim: ~+30 %).

    python -m benchmarks.acme_tradeoff [--seeds 0 1 2] [--engine local] [overrides ...]

Score S = acc - 0.5 (size / size_max + energy / energy_max) with measured accuracy, per device
class, from the same run's 16 measured sub-networks. Selections: ACME rule=accuracy (most accurate
predicted point on the feasible Pareto front), ACME rule=tradeoff (best predicted score on it),
and the baselines highest-accuracy (ignores limits), largest feasible, random feasible (mean).
S can be negative, so the relative change is (S - S_base) / |S_base|. Also: the surrogate's error
on the sub-networks it was not fitted on.
"""

from __future__ import annotations

import sys

import numpy as np
from omegaconf import OmegaConf

from stratos.acme.pareto import select_for_device
from stratos.acme.profile import SubnetCost
from benchmarks.acme_common import mean_std, parser, run_seeds, table


def selections(rep: dict) -> dict[str, dict]:
    """Per device class: both ACME rules and the baselines, recomputed from the run's measurements."""
    cloud = rep["cloud"]
    costs = [SubnetCost(**c) for c in cloud["costs"]]
    acc, pred = np.array(cloud["acc"]), np.array(cloud["surrogate"]["pred"])
    w = float(rep["_cfg"].acme.selection.tradeoff_weight)
    out = {}
    for dev in rep["_cfg"].device_classes:
        dev = OmegaConf.create(OmegaConf.to_container(dev))
        a = select_for_device(costs, pred, acc, dev, "accuracy", w)
        t = select_for_device(costs, pred, acc, dev, "tradeoff", w)
        out[dev.name] = {"acme_accuracy": a["chosen"], "acme_tradeoff": t["chosen"], **a["baselines"]}
    return out


def main(argv=None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    reps = run_seeds(args)
    rows, rel = [], {"acme_accuracy": [], "acme_tradeoff": []}
    for seed, rep in zip(args.seeds, reps):
        for name, s in selections(rep).items():
            base = s["highest_accuracy"]["score"]
            for k in rel:
                rel[k].append((s[k]["score"] - base) / abs(base))
            rows.append([seed, name, f"({s['acme_accuracy']['width']},{s['acme_accuracy']['depth']})",
                         f"{s['acme_accuracy']['acc']:.3f}", f"{s['acme_accuracy']['size_mb']:.3f}",
                         f"{s['acme_accuracy']['score']:.3f}", f"{s['acme_tradeoff']['score']:.3f}",
                         f"{base:.3f}", f"{s['largest_size']['score']:.3f}", f"{s['random']['score']:.3f}",
                         f"{100 * rel['acme_accuracy'][-1]:+.0f} %"])
    print("trade-off score S = acc - 0.5 (size/max + energy/max); higher is better")
    print(table(["seed", "class", "chosen (w,d)", "acc", "MB", "S acme", "S acme-tradeoff", "S highest-acc",
                 "S largest", "S random", "acme vs highest"], rows))
    for k, v in rel.items():
        print(f"  {k} vs highest-accuracy, relative: {mean_std(v)} over {len(v)} (seed, class) pairs")
    maes = [r["cloud"]["surrogate"]["held_mae"] for r in reps]
    mx = [r["cloud"]["surrogate"]["held_max_err"] for r in reps]
    n_fit = len(reps[0]["cloud"]["surrogate"]["fit_idx"])
    print(f"surrogate (degree {reps[0]['_cfg'].acme.selection.surrogate_degree}, fitted on {n_fit} of "
          f"{len(reps[0]['cloud']['acc'])}): held-out MAE {mean_std(maes)}, max error {mean_std(mx)}; "
          f"teacher accuracy {mean_std([r['cloud']['teacher_acc'] for r in reps])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
