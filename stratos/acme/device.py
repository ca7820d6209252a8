"""Device tier jobs: local head training on private data, upload of summaries only, personalisation.

round 1: backbone + head from the edge; features of the private train/test sets (kept private);
         head trained locally from the edge's head; upload = head-unit importance + feature
         summary (+ the local head when `upload_head`) + the example count.
round 2: the edge's personalised package -> prune the head with the mixed importance
         (keep_ratio of the units), fine-tune it on local data, report test accuracy.
`personalise` is the round-2 computation, shared with the comparison harness so the baselines
(FedAvg weighting, local only) run exactly the same code with other weights.
"""

from __future__ import annotations

import logging
import fsspec
import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from stratos import artifacts
from stratos.acme import backbone as bb
from stratos.acme.aggregate import feature_summary, normalise_importance, projections
from stratos.acme.data import Dataset
from stratos.acme.edge import unpack_personal
from stratos.acme.exchange import Exchange, node_dir
from stratos.acme.export import load_subnet
from stratos.acme.heads import Head, head_accuracy, head_importance, pooled_features, prune_head, train_head

PROJ_SEED = 1234  # shared by all devices: sliced summaries must use the same directions


def write_tensors(url: str, tensors: dict[str, torch.Tensor]) -> str:
    with artifacts.atomic_open(url, "wb") as f:
        f.write(st_save({k: v.contiguous() for k, v in tensors.items()}))
    return url


def read_tensors(url: str) -> dict[str, torch.Tensor]:
    with fsspec.open(url, "rb") as f:
        return st_load(f.read())


def _setup(spec: dict):
    torch.set_num_threads(int(spec["threads"]))
    if not logging.getLogger().handlers:  # a fresh job process: make its INFO lines reach the job log
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return OmegaConf.create(spec["acme"]), Exchange(spec["root"], spec.get("scenario", "acme"))


def load_head(meta: dict, blob: bytes) -> Head:
    head = Head(int(meta["in_dim"]), list(meta["hiddens"]), len(meta["classes"]))
    head.load_state_dict(st_load(blob))
    return head.eval()


def private_features(root: str, device: str, ex: Exchange, meta: dict) -> dict[str, torch.Tensor]:
    """Pooled features + labels of the device's private train/test sets (cached in its private dir)."""
    private = artifacts.join(node_dir(root, device), "private")
    cache = artifacts.join(private, "features.safetensors")
    if artifacts.exists(cache):
        return read_tensors(cache)
    with ex.local_dir(device, "backbone") as folder:
        model, tok = load_subnet(folder)
    out = {}
    for split in ("train", "test"):
        ds = Dataset.from_rows(artifacts.read_jsonl(artifacts.join(private, f"{split}.jsonl")), tuple(meta["classes"]))
        feats = pooled_features(model, bb.encode(tok, ds.texts, int(meta["max_length"])))
        out[f"{split}.x"] = feats[meta["arch"]["pooling"]].contiguous()
        out[f"{split}.y"] = torch.as_tensor(ds.labels)
    write_tensors(cache, out)
    return out


def local_update(head: Head, Ztr: torch.Tensor, ytr: torch.Tensor, c, seed: int):
    """Round-1 computation: (trained head, importance per hidden layer (normalised), standardised Z)."""
    trained = train_head(head, Ztr, ytr, int(c.local_steps), float(c.lr), seed)
    imp = normalise_importance([s.numpy().astype(np.float64) for s in head_importance(trained, Ztr, ytr)])
    return trained, imp


def summary_of(head: Head, Ztr: torch.Tensor, c) -> dict[str, np.ndarray]:
    Zs = ((Ztr - head.mu) / head.sigma).numpy()
    proj = projections(Zs.shape[1], int(c.n_projections), PROJ_SEED) if c.distance == "sliced" else None
    return feature_summary(Zs, int(c.n_quantiles), proj)


def device_round1(spec: dict) -> str:
    """spec: root, device, edge, acme, seed, threads."""
    acme, ex = _setup(spec)
    me, c, seed = spec["device"], acme.clients, int(spec["seed"])
    meta = ex.read_json(me, "head.json")
    head = load_head(meta, ex.read_bytes(me, "head.safetensors"))
    f = private_features(spec["root"], me, ex, meta)
    trained, imp = local_update(head, f["train.x"], f["train.y"], c, seed)
    summary = summary_of(head, f["train.x"], c)
    t = {f"imp.{i}": torch.as_tensor(v, dtype=torch.float32) for i, v in enumerate(imp)}
    t.update({f"sum.{k}": torch.from_numpy(v) for k, v in summary.items()})
    t["n"] = torch.tensor([len(f["train.y"])], dtype=torch.int32)
    private = artifacts.join(node_dir(spec["root"], me), "private")
    write_tensors(artifacts.join(private, "local_head.safetensors"), trained.state_dict())
    key = me.replace(":", "_")
    if c.upload_head:  # separate file and ledger kind, so both variants' bytes can be told apart
        ex.send_bytes(me, spec["edge"], f"upload/{key}.head.safetensors",
                      st_save({k: v.contiguous() for k, v in trained.state_dict().items()}), kind="head")
    return ex.send_bytes(me, spec["edge"], f"upload/{key}.safetensors", st_save(t), kind="summary")


def personalise(start: Head, state: dict[str, torch.Tensor] | None, importance: list[np.ndarray], Ztr: torch.Tensor,
                ytr: torch.Tensor, c, seed: int) -> Head:
    """Round-2 computation: start from the mixed head (or `start`), prune by importance, fine-tune locally."""
    head = Head(start.mu.numel(), start.hiddens, start.out.out_features)
    head.load_state_dict(state if state is not None else start.state_dict())
    pruned = prune_head(head, [torch.as_tensor(v) for v in importance], float(c.keep_ratio))
    return train_head(pruned, Ztr, ytr, int(c.local_steps), float(c.lr), seed + 1)


def device_round2(spec: dict) -> str:
    """spec: root, device, edge, acme, seed, threads."""
    acme, ex = _setup(spec)
    me, c, seed = spec["device"], acme.clients, int(spec["seed"])
    meta = ex.read_json(me, "head.json")
    f = private_features(spec["root"], me, ex, meta)
    private = artifacts.join(node_dir(spec["root"], me), "private")
    local = Head(int(meta["in_dim"]), list(meta["hiddens"]), len(meta["classes"]))
    local.load_state_dict(read_tensors(artifacts.join(private, "local_head.safetensors")))
    imp, state = unpack_personal(ex.read_bytes(me, "personal.safetensors"),
                                 ex.read_bytes(me, "personal.head.safetensors") if c.upload_head else None)
    head = personalise(local, state, imp, f["train.x"], f["train.y"], c, seed)
    result = {"device": me, "acc": head_accuracy(head, f["test.x"], f["test.y"]),
              "n_train": int(len(f["train.y"])), "n_test": int(len(f["test.y"])), "hiddens": head.hiddens,
              "head_params": int(sum(p.numel() for p in head.parameters())),
              "label_counts": np.bincount(f["train.y"].numpy(), minlength=len(meta["classes"])).tolist()}
    write_tensors(artifacts.join(node_dir(spec["root"], me), "out", "head.safetensors"), head.state_dict())
    ex.send_json(me, spec["edge"], f"report/{me.replace(':', '_')}.json", result, kind="report")
    return artifacts.write_json(artifacts.join(node_dir(spec["root"], me), "out", "result.json"), result)

