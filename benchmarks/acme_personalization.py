"""Per-client accuracy: ACME personalisation vs one shared model vs FedAvg weighting (claim: +10 %).

    python -m benchmarks.acme_personalization [--seeds 0 1 2] [--engine local] [overrides ...]

All methods run in the same run on the same uploads and each client's own test set (its own
label-skewed distribution, Dirichlet alpha from the config):
  acme          similarity-weighted importance only (devices upload importance + summaries)
  acme+heads    similarity-weighted importance and heads (devices also upload their head)
  fedavg        count-weighted importance only;  fedavg+heads   count-weighted importance and heads
  local         no collaboration (each client's own head, pruned by its own importance, fine-tuned)
  shared        one head per class trained centrally on all clients' raw data (no personalisation)
  shared_fedavg the count-weighted average of the clients' heads (no personalisation)
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.acme_common import mean_std, parser, run_seeds, table

NAMES = {"similarity_imp_only": "acme", "similarity": "acme+heads", "fedavg_imp_only": "fedavg",
         "fedavg": "fedavg+heads", "local": "local", "shared_central": "shared", "shared_fedavg": "shared_fedavg"}


def per_client(rep: dict) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for comp in rep["comparisons"].values():
        for key, name in NAMES.items():
            out.setdefault(name, []).extend(comp["acc"].get(key, []))
    return {k: np.array(v) for k, v in out.items() if v}


def main(argv=None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    reps = run_seeds(args)
    accs = [per_client(r) for r in reps]
    names = [n for n in NAMES.values() if all(n in a for a in accs)]
    print("mean per-client test accuracy (each client's own label-skewed test set)")
    print(table(["seed", *names], [[s, *(f"{a[n].mean():.3f}" for n in names)] for s, a in zip(args.seeds, accs)]))
    print(table(["mean ± std", *names], [["", *(mean_std([a[n].mean() for a in accs]) for n in names)]]))
    print("ACME vs baselines, per client (points = absolute accuracy difference; rel = / baseline; wins = clients better)")
    rows = []
    for ours in ("acme", "acme+heads"):
        for base in ("shared", "shared_fedavg", "fedavg", "fedavg+heads", "local"):
            if ours not in names or base not in names:
                continue
            d = np.concatenate([a[ours] - a[base] for a in accs])
            rel = np.mean([a[ours].mean() / a[base].mean() - 1 for a in accs])
            ties = int((np.abs(d) < 1e-9).sum())
            rows.append([ours, base, f"{100 * d.mean():+.1f}", f"{100 * rel:+.1f} %", f"{int((d > 1e-9).sum())}/"
                         f"{len(d)} ({ties} ties)"])
    print(table(["ours", "baseline", "points", "rel", "wins"], rows))
    alpha = reps[0]["_cfg"].acme.clients.dirichlet_alpha
    print(f"clients: {len(accs[0]['acme'])} per seed, Dirichlet alpha {alpha}; run seconds:",
          [r["_seconds"] for r in reps])
    return 0


if __name__ == "__main__":
    sys.exit(main())
