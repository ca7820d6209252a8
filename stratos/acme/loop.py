"""The cloud -> edge -> device loop on a job engine (submitit local processes or a Slurm array).

    setup_world   place data where it lives (cloud public set, each device's private split)
    cloud_job     1 job
    edge_job      1 job per device class          (array)
    device_round1 1 job per device                (array)
    edge_aggregate 1 job per device class         (array)
    device_round2 1 job per device                (array)

Jobs get only a small JSON-able spec (root URL, their node name, the acme config) and talk
through `Exchange` storage; their return values are just the URLs of what they wrote.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Callable

import numpy as np
from omegaconf import DictConfig, OmegaConf

from stratos import artifacts
from stratos.acme.cloud import cloud_job
from stratos.acme.data import (Dataset, balanced_subset, dirichlet_split, load_user_dataset, mahjong_dataset,
                               random_hands, split_train_test)
from stratos.acme.device import device_round1, device_round2
from stratos.acme.edge import edge_aggregate, edge_job
from stratos.acme.exchange import node_dir
from stratos.errors import UserError

log = logging.getLogger("stratos")
POOL_FACTOR = 1.5  # synthetic pool = 1.5 x what the clients take, so Dirichlet draws rarely run a class dry


def device_nodes(device_classes) -> dict[str, list[str]]:
    return {d["name"]: [f"device:{d['name']}-{k}" for k in range(int(d["n_clients"]))] for d in device_classes}


def setup_world(root: str, acme: DictConfig, device_classes, seed: int) -> dict:
    """Write the cloud's data and every device's private train/test split. Nothing here is a transfer."""
    c = acme.clients
    nodes = [n for ns in device_nodes(device_classes).values() for n in ns]
    need = len(nodes) * (int(c.n_train) + int(c.n_test))
    rng = np.random.default_rng(seed)
    if acme.source:
        ds = load_user_dataset(acme.source, acme.text_field, acme.label_field)
        pub_idx, rest = balanced_subset(ds, int(acme.n_public), rng)
        public, pool = ds.take(pub_idx), ds.take(rest)
        corpus = public.texts
    else:
        ds = mahjong_dataset(int(acme.n_public) + int(POOL_FACTOR * need), seed)
        public, pool = ds.take(np.arange(int(acme.n_public))), ds.take(np.arange(int(acme.n_public), len(ds)))
        corpus = random_hands(int(acme.corpus_size), rng)
    if len(public) < 8:
        raise UserError(f"invalid value for 'acme.n_public': {acme.n_public} (allowed: >= 8 examples)")
    cloud = node_dir(root, "cloud")
    artifacts.write_jsonl(artifacts.join(cloud, "private", "public.jsonl"), public.to_rows())
    artifacts.write_jsonl(artifacts.join(cloud, "private", "corpus.jsonl"), [{"text": t} for t in corpus])
    artifacts.write_json(artifacts.join(cloud, "private", "meta.json"), {"classes": list(ds.classes)})
    parts = dirichlet_split(pool.labels, len(nodes), int(c.n_train) + int(c.n_test), float(c.dirichlet_alpha),
                            len(ds.classes), rng)
    info = {}
    for node, idx in zip(nodes, parts):
        tr, te = split_train_test(idx, pool.labels, int(c.n_train), rng)
        priv = artifacts.join(node_dir(root, node), "private")
        artifacts.write_jsonl(artifacts.join(priv, "train.jsonl"), pool.take(tr).to_rows())
        artifacts.write_jsonl(artifacts.join(priv, "test.jsonl"), pool.take(te).to_rows())
        info[node] = {"train": np.bincount(pool.labels[tr], minlength=len(ds.classes)).tolist(),
                      "test": np.bincount(pool.labels[te], minlength=len(ds.classes)).tolist()}
    return {"classes": list(ds.classes), "clients": info}


class Engine:
    """Runs lists of job specs: submitit (local processes / Slurm array) or inline calls."""

    def __init__(self, kind: str, folder: str, timeout_min: int, threads: int, max_parallel: int, slurm=None):
        self.kind, self.max_parallel = kind, max(1, int(max_parallel))
        self.executor = None
        if kind != "inline":
            import submitit

            cluster = {"local": "local", "slurm": "slurm", "auto": None}[kind]
            self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
            params = {"timeout_min": int(timeout_min), "cpus_per_task": int(threads), "name": "acme"}
            if self.executor.cluster == "slurm":
                if slurm is not None and slurm.get("partition"):
                    params["slurm_partition"] = slurm["partition"]
                if slurm is not None and slurm.get("account"):
                    params["slurm_account"] = slurm["account"]
                params["slurm_array_parallelism"] = self.max_parallel
            self.executor.update_parameters(**params)

    @property
    def cluster(self) -> str:
        return "inline" if self.executor is None else self.executor.cluster

    def map(self, fn: Callable[[dict], str], specs: list[dict]) -> list[str]:
        if self.executor is None:
            return [fn(s) for s in specs]
        if self.executor.cluster == "slurm":  # one array; Slurm throttles it
            return [j.result() for j in self.executor.map_array(fn, specs)]
        out = []
        for s in range(0, len(specs), self.max_parallel):  # local processes: waves of max_parallel
            out += [j.result() for j in self.executor.map_array(fn, specs[s:s + self.max_parallel])]
        return out


def run_loop(acme: DictConfig, device_classes, seed: int, root: str, slurm=None) -> dict:
    """Run the whole loop under `root`; returns {"world", "engine", "reports": urls}."""
    acme_d = OmegaConf.to_container(acme, resolve=True)
    classes = [OmegaConf.to_container(d, resolve=True) if isinstance(d, DictConfig) else dict(d) for d in device_classes]
    world = setup_world(root, acme, classes, seed)
    e = acme.executor
    private = False
    try:  # job pickles and logs: beside the exchange when it is on local disk, else a private temp dir
        folder = os.path.join(artifacts.local_path(root), "_submitit")
    except ValueError:
        folder, private = tempfile.mkdtemp(prefix="acme-submitit-"), True
    engine = Engine(e.kind, folder, e.timeout_min, e.threads_per_job, e.max_parallel, slurm)
    base = {"root": root, "acme": acme_d, "seed": seed, "threads": int(e.threads_per_job)}
    nodes = device_nodes(classes)
    log.info("acme: engine=%s, %d device classes, %d devices", engine.cluster, len(classes),
             sum(map(len, nodes.values())))
    reports = {"cloud": engine.map(cloud_job, [{**base, "device_classes": classes}])[0]}
    edge_specs = [{**base, "device_class": d, "devices": nodes[d["name"]]} for d in classes]
    reports["edge_search"] = engine.map(edge_job, edge_specs)
    dev_specs = [{**base, "device": n, "edge": f"edge:{d['name']}"} for d in classes for n in nodes[d["name"]]]
    engine.map(device_round1, dev_specs)
    reports["edge_aggregation"] = engine.map(edge_aggregate, edge_specs)
    reports["devices"] = engine.map(device_round2, dev_specs)
    if (engine.executor is not None or private) and e.kind != "slurm" and os.path.isdir(folder):
        shutil.rmtree(folder, ignore_errors=True)  # job pickles/logs: kept only for Slurm post-mortems
    return {"world": world, "engine": engine.cluster, "reports": reports}


def load_private(root: str, node: str, classes: list[str]) -> dict[str, Dataset]:
    priv = artifacts.join(node_dir(root, node), "private")
    return {s: Dataset.from_rows(artifacts.read_jsonl(artifacts.join(priv, f"{s}.jsonl")), tuple(classes))
            for s in ("train", "test")}
