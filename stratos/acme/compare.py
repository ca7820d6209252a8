"""Evidence after a loop: per-client accuracy of ACME vs baselines, and the centralised byte count.

Per device class, from exactly what the edge received (the device uploads) and the devices'
private data (this is a simulation, so the harness may read both), every method runs the same
`device.personalise` code and differs only in the mixing weights:
  similarity  ACME: row-softmax of 1 / (1 + Wasserstein) between feature summaries
  fedavg      weights = example counts (the same global mix for every client)
  local       identity weights (no collaboration)
  *_imp_only  with heads uploaded: the same weights applied to importance only (= upload_head false)
and two *shared* models, one per class, evaluated on every client's own test set:
  shared_central   one head trained on the pooled raw training data of all clients (centralised)
  shared_fedavg    the count-weighted average of the clients' heads, not fine-tuned
The configured method's numbers are recomputed and checked against what the device jobs reported.

Centralised transfers (scenario "centralised" in the ledger): each device's raw training file goes
device -> edge -> cloud; the class's model (the same backbone sub-network and a head) goes
cloud -> edge once and edge -> device per device.
"""

from __future__ import annotations

import fsspec
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save as st_save

from stratos import artifacts
from stratos.acme.aggregate import fedavg_weights, mix_states
from stratos.acme.device import load_head, personalise, private_features, read_tensors
from stratos.acme.edge import edge_weights, personal_packages, read_uploads, unpack_personal
from stratos.acme.exchange import Exchange, node_dir
from stratos.acme.heads import Head, head_accuracy, train_head

METHODS = ("similarity", "fedavg", "local")


def _personal_accuracies(uploads, local_heads, feats, c, seed, weighting: str) -> list[float]:
    """Accuracy per client after round 2 with `weighting` (similarity | fedavg | local = identity)."""
    cc = OmegaConf.merge(c, {"weighting": weighting if weighting != "local" else "similarity"})
    A = np.eye(len(uploads)) if weighting == "local" else edge_weights(uploads, cc)[0]
    accs = []
    for i, (imp_blob, head_blob) in enumerate(personal_packages(uploads, A)):
        imp, state = unpack_personal(imp_blob, head_blob)
        head = personalise(local_heads[i], state, imp, feats[i]["train.x"], feats[i]["train.y"], c, seed)
        accs.append(head_accuracy(head, feats[i]["test.x"], feats[i]["test.y"]))
    return accs


def compare_class(root: str, name: str, devices: list[str], acme: DictConfig, seed: int) -> dict:
    ex = Exchange(root)
    c, edge = acme.clients, f"edge:{name}"
    meta = ex.read_json(devices[0], "head.json")
    head0 = load_head(meta, ex.read_bytes(devices[0], "head.safetensors"))
    uploads = read_uploads(ex, edge, devices, bool(c.upload_head))
    feats = [private_features(root, d, ex, meta) for d in devices]
    local_heads = []
    for d in devices:  # each device's round-1 head (its private state)
        h = Head(int(meta["in_dim"]), list(meta["hiddens"]), len(meta["classes"]))
        h.load_state_dict(read_tensors(artifacts.join(node_dir(root, d), "private", "local_head.safetensors")))
        local_heads.append(h)
    per_method = {m: _personal_accuracies(uploads, local_heads, feats, c, seed, m) for m in METHODS}
    if c.upload_head:  # the importance-only variant from the same uploads: what upload_head=false would give
        bare = [{**u, "state": None} for u in uploads]
        for m in ("similarity", "fedavg"):
            per_method[f"{m}_imp_only"] = _personal_accuracies(bare, local_heads, feats, c, seed, m)
    # shared models
    Ztr = torch.cat([f["train.x"] for f in feats])
    ytr = torch.cat([f["train.y"] for f in feats])
    central = Head(head0.mu.numel(), head0.hiddens, head0.out.out_features)
    central.load_state_dict(head0.state_dict())
    central = train_head(central, Ztr, ytr, int(acme.heads.steps), float(acme.heads.lr), seed)
    per_method["shared_central"] = [head_accuracy(central, f["test.x"], f["test.y"]) for f in feats]
    if all(u["state"] for u in uploads):
        g = Head(head0.mu.numel(), head0.hiddens, head0.out.out_features)
        g.load_state_dict(mix_states([u["state"] for u in uploads], fedavg_weights([u["n"] for u in uploads]))[0])
        per_method["shared_fedavg"] = [head_accuracy(g, f["test.x"], f["test.y"]) for f in feats]
    reported = [artifacts.read_json(artifacts.join(node_dir(root, d), "out", "result.json"))["acc"] for d in devices]
    recomputed = per_method[c.weighting]
    _centralised_transfers(root, name, devices, central)
    return {"devices": devices, "acc": per_method, "reported": reported,
            "consistency_max_abs": float(np.max(np.abs(np.array(reported) - np.array(recomputed)))),
            "mean": {m: float(np.mean(v)) for m, v in per_method.items()}}


def _centralised_transfers(root: str, name: str, devices: list[str], head: Head) -> None:
    """Move what centralised training moves, through the same storage, counted under scenario 'centralised'."""
    ex = Exchange(root, scenario="centralised")
    edge = f"edge:{name}"
    for d in devices:  # raw training data up: device -> edge -> cloud
        with fsspec.open(artifacts.join(node_dir(root, d), "private", "train.jsonl"), "rb") as f:
            raw = f.read()
        key = f"central/raw/{d.replace(':', '_')}.jsonl"
        ex.send_bytes(d, edge, key, raw, kind="data")
        ex.forward(edge, "cloud", key, kind="data")
    # the trained model down: cloud -> edge once, edge -> each device
    with Exchange(root).local_dir(edge, "backbone") as backbone:
        ex.send_dir("cloud", edge, f"central/{name}/backbone", backbone, kind="model")
    ex.send_bytes("cloud", edge, f"central/{name}/head.safetensors",
                  st_save({k: v.contiguous() for k, v in head.state_dict().items()}), kind="model")
    for d in devices:
        ex.forward(edge, d, f"central/{name}/backbone", kind="model")
        ex.forward(edge, d, f"central/{name}/head.safetensors", kind="model")
