"""End to end at toy size: the whole loop inline (and, marked slow, as submitit processes)."""

import json
import tempfile

import pytest

from stratos import artifacts
from stratos.acme.__main__ import compose_acme
from stratos.acme.exchange import read_ledger
from stratos.acme.app import run
from stratos.artifacts import StageContext

TOY = [
    "acme.n_public=240", "acme.corpus_size=300",
    "acme.backbone.hidden=32", "acme.backbone.layers=2", "acme.backbone.heads=2",
    "acme.backbone.intermediate=64", "acme.backbone.pretrain_steps=5",
    "acme.elastic.teacher_steps=15", "acme.elastic.steps=4", "acme.elastic.batch_size=32",
    "acme.elastic.widths=[1.0,0.5]", "acme.elastic.depths=[1.0,0.5]",
    "acme.elastic.subnets_per_step=2", "acme.elastic.importance_batches=1",
    "acme.selection.surrogate_degree=1", "acme.selection.n_measured=3",
    "acme.selection.latency_runs=3",
    "acme.heads.hiddens=[8]", "acme.heads.depths=[1]", "acme.heads.steps=20",
    "acme.clients.n_train=16", "acme.clients.n_test=16", "acme.clients.local_steps=10",
    "device_classes.0.n_clients=2", "device_classes.1.n_clients=2",
    "device_classes.0.max_size_mb=1.0", "device_classes.1.max_size_mb=0.1",
    "device_classes.1.head_max_params=400",
]


def _run(tmp_path, extra):
    cfg = compose_acme([*TOY, *extra])
    ctx = StageContext(run_dir=str(tmp_path), stage="acme", config_hash="test")
    return run(cfg, ctx), ctx


def test_inline_loop_end_to_end(tmp_path):
    m, ctx = _run(tmp_path, ["acme.executor.kind=inline", "acme.clients.upload_head=true"])
    x = m.metrics
    assert x["acme/consistency/max_abs"] == 0.0  # device jobs and the harness agree exactly
    assert x["acme/onnx/max_abs_diff"] < 1e-4
    for meth in ("similarity", "fedavg", "local", "similarity_imp_only", "shared_central", "shared_fedavg"):
        assert 0.0 <= x[f"acme/test/acc_{meth}"] <= 1.0
    rep = json.loads(open(artifacts.local_path(m.outputs["report.json"])).read())
    sel = rep["cloud"]["selections"]
    assert sel["watch"]["chosen"]["size_mb"] <= 0.1 < sel["phone"]["chosen"]["size_mb"] + 1  # limits honoured
    assert rep["edges"]["watch"]["search"]["chosen"]["hidden"] == 8
    ledger = read_ledger(rep["storage"])
    acme = [r for r in ledger if r["scenario"] == "acme"]
    # devices never send data: only summaries, heads and reports leave them
    assert {r["kind"] for r in acme if r["src"].startswith("device:")} == {"summary", "head", "report"}
    assert {r["boundary"] for r in acme} == {"cloud->edge", "edge->device", "device->edge"}
    cen = [r for r in ledger if r["scenario"] == "centralised"]
    assert {r["boundary"] for r in cen if r["kind"] == "data"} == {"device->edge", "edge->cloud"}
    assert x["acme/bytes/acme"] == sum(r["bytes"] for r in acme)
    assert "bytes: ACME" in open(artifacts.local_path(m.outputs["report.txt"])).read()
    again, _ = _run(tmp_path, ["acme.executor.kind=inline", "acme.clients.upload_head=true"])
    assert again.metrics["acme/bytes/acme"] == x["acme/bytes/acme"]  # a re-run starts from clean storage


@pytest.mark.slow
def test_local_engine_runs_every_tier_as_its_own_process_and_matches_inline(tmp_path):
    inline, _ = _run(tmp_path / "a", ["acme.executor.kind=inline"])
    local, _ = _run(tmp_path / "b", ["acme.executor.kind=local", "acme.executor.max_parallel=4"])
    for k, v in inline.metrics.items():
        if not k.startswith("acme/select/") and "bytes" not in k:  # latency-dependent choices may differ
            assert local.metrics[k] == pytest.approx(v), k
    rep = json.loads(open(artifacts.local_path(local.outputs["report.json"])).read())
    kinds = {r["kind"] for r in read_ledger(rep["storage"]) if r["scenario"] == "acme"}
    assert "head" not in kinds and "summary" in kinds  # upload_head=false: importance + summaries only


def test_inline_loop_with_a_llama_backbone(tmp_path, monkeypatch):
    # grouped-query attention (2 q heads share 1 kv head); storage on a non-local fsspec filesystem
    scratch = tmp_path / "tmp"  # this process's temp folder: the cloud's work folder and the copies of received
    scratch.mkdir()  # models live there while a job needs them and are gone when it ends
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    m, _ = _run(tmp_path, ["acme.executor.kind=inline", "acme.backbone.family=llama",
                           "acme.backbone.kv_heads=1", "acme.executor.storage=memory://acme-e2e"])
    assert m.metrics["acme/consistency/max_abs"] == 0.0 and m.metrics["acme/onnx/max_abs_diff"] < 1e-4
    rep = json.loads(open(artifacts.local_path(m.outputs["report.json"])).read())
    assert rep["cloud"]["family"] == "llama" and rep["storage"] == "memory://acme-e2e/acme-test"
    assert read_ledger(rep["storage"]) and not (tmp_path / "acme" / "exchange").exists()
    assert sorted(p.name for p in scratch.iterdir()) == []


@pytest.mark.slurm
def test_slurm_engine_runs_the_tiers_as_slurm_array_jobs(tmp_path):
    """Needs the single-node cluster (launchers/slurm_cluster.sh up); device rounds are one array each."""
    m, _ = _run(tmp_path, ["acme.executor.kind=slurm", "acme.executor.timeout_min=10"])
    rep = json.loads(open(artifacts.local_path(m.outputs["report.json"])).read())
    assert rep["engine"] == "slurm" and m.metrics["acme/consistency/max_abs"] == 0.0
    logs = list((tmp_path / "acme" / "exchange" / "_submitit").glob("*_log.out"))
    assert len(logs) >= 1 + 2 + 4 + 2 + 4  # cloud, edges, device round 1, aggregation, device round 2
