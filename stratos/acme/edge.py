"""Edge tier jobs: head search for its device class, then personalised aggregation of its devices.

edge_job:        backbone + calibration data from the cloud -> exhaustive head search under the
                 class's parameter budget -> each device gets `backbone/` (relayed) + `head.safetensors`
                 + `head.json`.
edge_aggregate:  device uploads (importance, feature summaries, optionally heads) -> weights A
                 (similarity or FedAvg) -> each device gets its personalised `personal.safetensors`.
"""

from __future__ import annotations

import logging
import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from stratos import artifacts
from stratos.acme import backbone as bb
from stratos.acme.aggregate import (distance_matrix, fedavg_weights, mix_importance, mix_states,
                                    similarity_weights)
from stratos.acme.data import Dataset
from stratos.acme.exchange import Exchange, node_dir
from stratos.acme.export import load_subnet
from stratos.acme.heads import pooled_features, search_heads


def _setup(spec: dict):
    torch.set_num_threads(int(spec["threads"]))
    if not logging.getLogger().handlers:  # a fresh job process: make its INFO lines reach the job log
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return OmegaConf.create(spec["acme"]), Exchange(spec["root"], spec.get("scenario", "acme"))


def edge_job(spec: dict) -> str:
    """spec: root, device_class (dict), devices (node names), acme, seed, threads."""
    acme, ex = _setup(spec)
    me = f"edge:{spec['device_class']['name']}"
    dev = OmegaConf.create(spec["device_class"])
    with ex.local_dir(me, "backbone") as folder:
        model, tok = load_subnet(folder)
    calib = ex.read_json(me, "calib.json")
    sel = ex.read_json(me, "selection.json")
    ds = Dataset.from_rows(calib["rows"], tuple(calib["classes"]))
    feats = pooled_features(model, bb.encode(tok, ds.texts, int(sel["max_length"])))
    arch, head, table = search_heads(feats, torch.as_tensor(ds.labels), 0.25, acme.heads, len(ds.classes),
                                     int(dev.head_max_params), int(spec["seed"]))
    head_meta = {"arch": arch.as_dict(), "hiddens": head.hiddens, "classes": list(ds.classes),
                 "max_length": int(sel["max_length"]), "in_dim": int(head.mu.numel())}
    blob = st_save({k: v.contiguous() for k, v in head.state_dict().items()})
    for device in spec["devices"]:
        ex.forward(me, device, "backbone", kind="model")
        ex.send_bytes(me, device, "head.safetensors", blob, kind="model")
        ex.send_json(me, device, "head.json", head_meta, kind="control")
    out = artifacts.join(node_dir(spec["root"], me), "out", "search.json")
    return artifacts.write_json(out, {"chosen": arch.as_dict(), "table": table, "device_class": dev.name})


def unpack_upload(blob: bytes, head_blob: bytes | None = None) -> dict:
    """Device upload -> {"importance": [np (h_l,)], "summary": {...}, "state": {..} | None, "n": int}."""
    t = st_load(blob)
    imp = [t[f"imp.{i}"].double().numpy() for i in range(sum(k.startswith("imp.") for k in t))]
    summary = {k[len("sum."):]: t[k].numpy() for k in t if k.startswith("sum.")}
    return {"importance": imp, "summary": summary, "state": st_load(head_blob) if head_blob else None,
            "n": int(t["n"].item())}


def read_uploads(ex: Exchange, edge: str, devices: list[str], with_heads: bool) -> list[dict]:
    out = []
    for d in devices:
        key = d.replace(":", "_")
        head = ex.read_bytes(edge, f"upload/{key}.head.safetensors") if with_heads else None
        out.append(unpack_upload(ex.read_bytes(edge, f"upload/{key}.safetensors"), head))
    return out


def edge_weights(uploads: list[dict], clients_cfg) -> tuple[np.ndarray, np.ndarray]:
    """(A (n, n) mixing weights, W (n, n) distances) for the configured weighting."""
    W = distance_matrix([u["summary"] for u in uploads], clients_cfg.distance)
    if clients_cfg.weighting == "fedavg":
        return fedavg_weights([u["n"] for u in uploads]), W
    return similarity_weights(W, float(clients_cfg.temperature)), W


def personal_packages(uploads: list[dict], A: np.ndarray) -> list[tuple[bytes, bytes | None]]:
    """Per client: (mixed importance, mixed head or None when heads were not uploaded) as safetensors bytes."""
    imps = mix_importance([u["importance"] for u in uploads], A)
    states = mix_states([u["state"] for u in uploads], A) if all(u["state"] for u in uploads) else None
    out = []
    for i in range(len(uploads)):
        imp = st_save({f"imp.{layer}": torch.as_tensor(v, dtype=torch.float32) for layer, v in enumerate(imps[i])})
        head = st_save({k: v.contiguous() for k, v in states[i].items()}) if states is not None else None
        out.append((imp, head))
    return out


def unpack_personal(imp_blob: bytes, head_blob: bytes | None) -> tuple[list[np.ndarray], dict | None]:
    t = st_load(imp_blob)
    return [t[f"imp.{i}"].double().numpy() for i in range(len(t))], (st_load(head_blob) if head_blob else None)


def edge_aggregate(spec: dict) -> str:
    """spec: root, device_class, devices, acme, threads."""
    acme, ex = _setup(spec)
    me = f"edge:{spec['device_class']['name']}"
    uploads = read_uploads(ex, me, spec["devices"], bool(acme.clients.upload_head))
    A, W = edge_weights(uploads, acme.clients)
    for device, (imp, head) in zip(spec["devices"], personal_packages(uploads, A)):
        ex.send_bytes(me, device, "personal.safetensors", imp, kind="personalisation")
        if head is not None:
            ex.send_bytes(me, device, "personal.head.safetensors", head, kind="head")
    out = artifacts.join(node_dir(spec["root"], me), "out", "aggregation.json")
    return artifacts.write_json(out, {"devices": spec["devices"], "A": A.tolist(), "W": W.tolist(),
                                      "weighting": acme.clients.weighting, "distance": acme.clients.distance,
                                      "counts": [u["n"] for u in uploads]})

