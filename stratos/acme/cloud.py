"""Cloud tier job: pretrained backbone -> elastic backbone -> Pareto choice per device class -> edges.

Reads only its own data (cloud/main/private: labelled public set + unlabelled corpus), sends each
edge `backbone/` (the chosen sub-network as a standalone HF folder), `calib.jsonl` (a balanced
slice of the public set for head search) and `selection.json`; writes cloud/main/out/report.json.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

import numpy as np
import torch
from omegaconf import OmegaConf

from stratos import artifacts
from stratos.acme import backbone as bb
from stratos.acme.data import Dataset, balanced_subset
from stratos.acme.elastic import extract
from stratos.acme.exchange import Exchange, node_dir
from stratos.acme.export import export_onnx, onnx_parity, save_subnet
from stratos.acme.pareto import select_for_device, surrogate_fit_report
from stratos.acme.profile import subnet_cost
from stratos.acme.train_elastic import grid, importance_and_reorder, measure_accuracy, train_elastic

log = logging.getLogger("stratos")
CALIB_N = 400


def _setup(spec: dict):
    torch.set_num_threads(int(spec["threads"]))
    if not logging.getLogger().handlers:  # a fresh job process: make its INFO lines reach the job log
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    acme = OmegaConf.create(spec["acme"])
    return acme, Exchange(spec["root"], spec.get("scenario", "acme"))


def cloud_job(spec: dict) -> str:
    """spec: root, acme (dict), device_classes (list of dicts), seed, threads. Returns the report URL."""
    acme, ex = _setup(spec)
    seed = int(spec["seed"])
    t0 = time.time()
    me = node_dir(spec["root"], "cloud")
    meta = artifacts.read_json(artifacts.join(me, "private", "meta.json"))
    public = Dataset.from_rows(artifacts.read_jsonl(artifacts.join(me, "private", "public.jsonl")),
                               tuple(meta["classes"]))
    corpus = artifacts.read_jsonl(artifacts.join(me, "private", "corpus.jsonl"))
    C = len(public.classes)
    b = acme.backbone
    if b.name_or_path:
        model, tok = bb.load_pretrained(b.name_or_path, C)
    else:
        tok = bb.train_tokenizer([r["text"] for r in corpus], b.vocab_size)
        model = bb.pretrain(b, tok, [r["text"] for r in corpus], C, seed)
    enc = bb.encode(tok, public.texts, b.max_length)
    y = torch.as_tensor(public.labels)
    n_tr = int(0.75 * len(y))
    tr = {k: v[:n_tr] for k, v in enc.items()}
    te = {k: v[n_tr:] for k, v in enc.items()}
    e = acme.elastic
    bb.fine_tune(model, tr, y[:n_tr], e.teacher_steps, e.lr, e.batch_size, seed)
    teacher_acc = bb.accuracy(model, te, y[n_tr:])
    log.info("acme cloud: teacher (full model) accuracy %.3f", teacher_acc)
    importance_and_reorder(model, tr, y[:n_tr], e.importance_batches, e.batch_size, seed)
    elastic = train_elastic(model, tr, y[:n_tr], e, seed)
    subnets = grid(e.widths, e.depths)
    acc = measure_accuracy(elastic, te, y[n_tr:], subnets)  # all measured: the held-out ones score the surrogate
    one = {k: v[:1] for k, v in te.items()}
    costs = [subnet_cost(extract(model, w, d), w, d, one, acme.selection.latency_runs) for w, d in subnets]
    X = np.array(subnets)
    acc_true = np.array([acc[s] for s in subnets])
    sur = surrogate_fit_report(X, acc_true, acme.selection.n_measured, acme.selection.surrogate_degree)
    acc_pred = np.array(sur["pred"])
    selections, onnx = {}, {}
    calib_idx, _ = balanced_subset(public, min(CALIB_N, len(public)), np.random.default_rng(seed + 1))
    calib_rows = public.take(calib_idx).to_rows()
    with tempfile.TemporaryDirectory(prefix="acme-cloud-") as work:  # subnets and ONNX files, sent on, then gone
        for dev in spec["device_classes"]:
            dev = OmegaConf.create(dev)
            sel = select_for_device(costs, acc_pred, acc_true, dev, acme.selection.rule, acme.selection.tradeoff_weight)
            selections[dev.name] = sel
            w, d = sel["chosen"]["width"], sel["chosen"]["depth"]
            folder = os.path.join(work, dev.name)
            sub = extract(model, w, d)
            save_subnet(sub, tok, folder)
            if acme.onnx:  # standalone ONNX of the chosen sub-network, parity on two batch shapes
                path = os.path.join(work, f"{dev.name}.onnx")
                export_onnx(sub, path, {k: v[:4] for k, v in te.items()})
                odd = bb.encode(tok, [t[: len(t) // 2] for t in public.texts[-3:]], b.max_length)
                onnx[dev.name] = {"max_abs_diff": onnx_parity(sub, path, [{k: v[:4] for k, v in te.items()}, odd]),
                                  "bytes": os.path.getsize(path)}
                with open(path, "rb") as f, \
                        artifacts.atomic_open(artifacts.join(me, "out", f"{dev.name}.onnx"), "wb") as g:
                    g.write(f.read())
            edge = f"edge:{dev.name}"
            ex.send_dir("cloud", edge, "backbone", folder, kind="model")
            ex.send_json("cloud", edge, "calib.json", {"classes": list(public.classes), "rows": calib_rows},
                         kind="data")
            ex.send_json("cloud", edge, "selection.json", {"width": w, "depth": d, "max_length": int(b.max_length)},
                         kind="control")
    report = {"teacher_acc": teacher_acc, "subnets": [list(s) for s in subnets], "acc": acc_true.tolist(),
              "costs": [c.as_dict() for c in costs], "surrogate": sur, "selections": selections, "onnx": onnx,
              "family": model.config.model_type, "full_params": costs[0].params, "seconds": round(time.time() - t0, 2)}
    return artifacts.write_json(artifacts.join(me, "out", "report.json"), report)
