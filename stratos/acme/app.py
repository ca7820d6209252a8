"""The ACME application: the whole cloud -> edge -> device loop, then the evidence.

`python -m stratos.acme [overrides]` composes ACME's own root config (`conf/acme.yaml`, schema
`AcmeAppConfig`) and calls `run` here. It is not a stage of the distillation pipeline: it builds its
own classification data (Mahjong shanten buckets, or `acme.source`) and shares only the job
engines, the artifact I/O and the error conventions with the rest of Stratos.

Outputs (in the stage dir): exchange/ (all storage the tiers shared, incl. the ledger), report.json
(everything measured), report.txt (the tables), manifest metrics `acme/<group>/<name>`.
"""

from __future__ import annotations

import logging

import fsspec
import numpy as np
import torch
from omegaconf import DictConfig

from stratos import artifacts
from stratos.acme.compare import compare_class
from stratos.acme.config import validate_acme
from stratos.acme.exchange import read_ledger, totals
from stratos.acme.loop import device_nodes, run_loop
from stratos.artifacts import Manifest, StageContext

log = logging.getLogger("stratos")


def transmission(records: list[dict]) -> dict:
    """ACME vs centralised bytes: in total, and what leaves the devices (uplink).

    `*_no_heads` drop the ledger kind "head" (uploaded and personalised heads): the bytes of the
    same run with `upload_head=false`, where devices send only importance and feature summaries.
    """
    t = totals(records)
    empty = {"bytes": 0, "by_boundary": {}, "by_kind": {}}
    acme, cen = t.get("acme", empty), t.get("centralised", empty)
    up_c = sum(v for k, v in cen["by_boundary"].items() if k in ("device->edge", "edge->cloud"))
    heads_up = sum(r["bytes"] for r in records if r["scenario"] == "acme" and r["kind"] == "head"
                   and r["boundary"] == "device->edge")
    up = sum(v for k, v in acme["by_boundary"].items() if k.startswith("device->"))
    no_heads = acme["bytes"] - acme["by_kind"].get("head", 0)
    return {"acme": acme, "centralised": cen, "ratio": acme["bytes"] / max(1, cen["bytes"]),
            "uplink_acme": up, "uplink_centralised": up_c, "uplink_ratio": up / max(1, up_c),
            "ratio_no_heads": no_heads / max(1, cen["bytes"]),
            "uplink_ratio_no_heads": (up - heads_up) / max(1, up_c)}


def tables(cloud: dict, comparisons: dict, tx: dict) -> str:
    lines = ["ACME sub-networks (width, depth): measured accuracy | surrogate prediction | size MB | MFLOPs | host ms"]
    for (w, d), a, p, c in zip(cloud["subnets"], cloud["acc"], cloud["surrogate"]["pred"], cloud["costs"]):
        lines.append(f"  ({w:.2f}, {d:.2f})  {a:.3f} | {p:.3f} | {c['size_mb']:.3f} | {c['mflops']:.2f} | "
                     f"{c['host_ms']:.2f}")
    s = cloud["surrogate"]
    lines.append(f"surrogate: fitted on {len(s['fit_idx'])}, held-out MAE {s['held_mae']:.4f}, max {s['held_max_err']:.4f}")
    lines.append("selection per device class: chosen vs baselines (trade-off score = acc - 0.5 (size/max + energy/max))")
    for name, sel in cloud["selections"].items():
        ch, b = sel["chosen"], sel["baselines"]
        lines.append(f"  {name}: chosen ({ch['width']}, {ch['depth']}) acc {ch['acc']:.3f} size {ch['size_mb']:.3f} "
                     f"score {ch['score']:.3f} | highest-acc {b['highest_accuracy']['score']:.3f} "
                     f"(feasible={b['highest_accuracy']['feasible']}) | largest {b['largest_size']['score']:.3f} | "
                     f"random {b['random']['score']:.3f} | front {len(sel['front'])}/{sel['n_feasible']} feasible")
    lines.append("per-client test accuracy (mean over a class's clients)")
    for name, comp in comparisons.items():
        lines.append(f"  {name}: " + ", ".join(f"{m} {v:.3f}" for m, v in comp["mean"].items()))
    lines.append(f"bytes: ACME {tx['acme']['bytes']} vs centralised {tx['centralised']['bytes']} "
                 f"(ratio {tx['ratio']:.3f}, {tx['ratio_no_heads']:.3f} without head upload); device uplink "
                 f"{tx['uplink_acme']} vs {tx['uplink_centralised']} (ratio {tx['uplink_ratio']:.3f}, "
                 f"{tx['uplink_ratio_no_heads']:.3f} without head upload)")
    for scen in ("acme", "centralised"):
        lines.append(f"  {scen} by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(tx[scen]["by_kind"].items()))
                     + " | by boundary: " + ", ".join(f"{k} {v}" for k, v in sorted(tx[scen]["by_boundary"].items())))
    return "\n".join(lines) + "\n"


def run_acme(cfg: DictConfig, root: str) -> dict:
    """Loop + comparisons + transmission; returns the full report (also usable without a StageContext)."""
    validate_acme(cfg)
    acme, seed = cfg.acme, int(cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(acme.executor.threads_per_job))  # shared CPU: 1 thread is several x faster here
    try:
        loop = run_loop(acme, list(cfg.device_classes), seed, root, cfg.get("slurm"))
        cloud = artifacts.read_json(loop["reports"]["cloud"])
        nodes = device_nodes(list(cfg.device_classes))
        comparisons = {name: compare_class(root, name, devs, acme, seed) for name, devs in nodes.items()}
    finally:
        torch.set_num_threads(threads)
    edges = {name: {"search": artifacts.read_json(s), "aggregation": artifacts.read_json(a)}
             for name, s, a in zip(nodes, loop["reports"]["edge_search"], loop["reports"]["edge_aggregation"])}
    tx = transmission(read_ledger(root))
    return {"engine": loop["engine"], "world": loop["world"], "cloud": cloud, "edges": edges,
            "comparisons": comparisons, "transmission": tx, "tables": tables(cloud, comparisons, tx)}


def metrics_of(rep: dict) -> dict:
    cloud, comp, tx = rep["cloud"], rep["comparisons"], rep["transmission"]
    m = {"acme/cloud/teacher_acc": cloud["teacher_acc"], "acme/surrogate/held_mae": cloud["surrogate"]["held_mae"],
         "acme/bytes/acme": tx["acme"]["bytes"], "acme/bytes/centralised": tx["centralised"]["bytes"],
         "acme/bytes/ratio": tx["ratio"], "acme/bytes/uplink_ratio": tx["uplink_ratio"],
         "acme/bytes/ratio_no_heads": tx["ratio_no_heads"], "acme/bytes/uplink_ratio_no_heads": tx["uplink_ratio_no_heads"]}
    methods = sorted({k for c in comp.values() for k in c["mean"]})
    for meth in methods:
        vals = [a for c in comp.values() for a in c["acc"].get(meth, [])]
        m[f"acme/test/acc_{meth}"] = float(np.mean(vals))
    for name, sel in cloud["selections"].items():
        m[f"acme/select/{name}/score"] = sel["chosen"]["score"]
        m[f"acme/select/{name}/score_highest_acc"] = sel["baselines"]["highest_accuracy"]["score"]
        m[f"acme/select/{name}/size_mb"] = sel["chosen"]["size_mb"]
    if cloud["onnx"]:
        m["acme/onnx/max_abs_diff"] = max(v["max_abs_diff"] for v in cloud["onnx"].values())
    m["acme/consistency/max_abs"] = max(c["consistency_max_abs"] for c in comp.values())
    return m


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    acme = cfg.acme
    # the storage all tiers share (ledger included): inside this stage's directory, or a folder of this
    # stage's own under executor.storage. Leftovers of an earlier attempt would double-count bytes: cleared.
    storage = acme.executor.storage
    root = artifacts.join(storage, f"acme-{ctx.config_hash}") if storage else ctx.path("exchange")
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    rep = run_acme(cfg, root)
    log.info("acme results:\n%s", rep["tables"])
    ctx.write_json("report.json", {"storage": root, **{k: v for k, v in rep.items() if k != "tables"}})
    ctx.write_text("report.txt", rep["tables"])
    return ctx.manifest(metrics=metrics_of(rep))
