"""Orchestration: stage closure, hash-keyed reuse, stale-dir wipe, resume of an interrupted stage.

The stages here are small real functions defined in this file (they write artifacts and count
their runs on disk), so the pipeline's bookkeeping is tested without training anything.
"""

from __future__ import annotations

import os
import sys
import types

import pytest
from omegaconf import OmegaConf

from stratos import artifacts, pipeline
from stratos.pipeline import StageSpec

THIS = sys.modules[__name__]


def _count(ctx, name):
    path = os.path.join(os.path.dirname(ctx.run_dir), f"runs-{name}.txt")
    with open(path, "a") as f:
        f.write("x")


def run_data(cfg, ctx):
    _count(ctx, "data")
    ctx.write_jsonl("train.jsonl", [{"i": i} for i in range(cfg.task.n_train)])
    return ctx.manifest(metrics={"data/train/n": cfg.task.n_train})


def run_distill(cfg, ctx):
    _count(ctx, "distill")
    partial = artifacts.join(ctx.out_dir, "partial.txt")
    if cfg.get("crash") and not artifacts.exists(partial):
        artifacts.write_text(partial, "half")
        raise RuntimeError("simulated crash mid-stage")
    rows = artifacts.read_jsonl(ctx.input("data").path("train.jsonl"))
    ctx.write_json("model.json", {"n": len(rows), "resumed": artifacts.exists(partial)})
    return ctx.manifest(metrics={"distill/n": len(rows)})


def run_report(cfg, ctx):
    _count(ctx, "report")
    ctx.write_json("report.json", {k: m.metrics for k, m in ctx.inputs.items()})
    return ctx.manifest()


@pytest.fixture
def specs(monkeypatch):
    fake = {
        "data": StageSpec(__name__, ("task",)),
        "distill": StageSpec(__name__, ("trainer",), ("data",)),
        "report": StageSpec(__name__, (), (), ("data", "distill"), cached=False),
    }
    monkeypatch.setattr(pipeline, "SPECS", fake)
    monkeypatch.setattr(pipeline, "ORDER", ("data", "distill", "report"))
    # route each spec to this module's run_<stage>
    real_import = pipeline.importlib.import_module
    router = types.SimpleNamespace(run=lambda cfg, ctx: getattr(THIS, f"run_{ctx.stage}")(cfg, ctx))
    monkeypatch.setattr(pipeline.importlib, "import_module", lambda m: router if m == __name__ else real_import(m))


def make_cfg(stages, n=3, steps=1, crash=False, resume=True):
    return OmegaConf.create({"pipeline": {"stages": stages, "resume": resume}, "task": {"n_train": n},
                             "trainer": {"steps": steps}, "strategy": {"name": "auto"}, "crash": crash})


def runs(tmp_path, name):
    p = tmp_path / f"runs-{name}.txt"
    return len(p.read_text()) if p.exists() else 0


def test_subset_pulls_in_dependencies(specs):
    assert pipeline.stage_order(make_cfg(["distill"])) == ["data", "distill"]
    assert pipeline.stage_order(make_cfg(["report"])) == ["report"]


def test_rerun_reuses_and_config_change_redoes_only_dependents(specs, tmp_path):
    run_dir = str(tmp_path / "run")
    pipeline.run_pipeline(make_cfg(["data", "distill", "report"]), run_dir)
    pipeline.run_pipeline(make_cfg(["data", "distill", "report"]), run_dir)
    assert (runs(tmp_path, "data"), runs(tmp_path, "distill"), runs(tmp_path, "report")) == (1, 1, 2)
    pipeline.run_pipeline(make_cfg(["data", "distill", "report"], steps=2), run_dir)  # trainer changed
    assert (runs(tmp_path, "data"), runs(tmp_path, "distill")) == (1, 2)
    done = pipeline.run_pipeline(make_cfg(["data", "distill", "report"], n=5), run_dir)  # data changed -> both
    assert (runs(tmp_path, "data"), runs(tmp_path, "distill")) == (2, 3)
    assert done["distill"].metrics["distill/n"] == 5
    rep = artifacts.read_json(done["report"].path("report.json"))
    assert rep["distill"]["distill/n"] == 5


def test_crashed_stage_resumes_in_place_and_is_not_marked_done(specs, tmp_path):
    run_dir = str(tmp_path / "run")
    with pytest.raises(RuntimeError):
        pipeline.run_pipeline(make_cfg(["distill"], crash=True), run_dir)
    assert not (tmp_path / "run" / "distill" / "manifest.json").exists()
    assert (tmp_path / "run" / "data" / "manifest.json").exists()
    done = pipeline.run_pipeline(make_cfg(["distill"], crash=True), run_dir)
    assert artifacts.read_json(done["distill"].path("model.json"))["resumed"] is True
    assert runs(tmp_path, "data") == 1


def test_stale_stage_dir_of_other_config_is_wiped(specs, tmp_path):
    run_dir = str(tmp_path / "run")
    with pytest.raises(RuntimeError):
        pipeline.run_pipeline(make_cfg(["distill"], crash=True), run_dir)
    done = pipeline.run_pipeline(make_cfg(["distill"], steps=7), run_dir)  # different config: no resume
    assert artifacts.read_json(done["distill"].path("model.json"))["resumed"] is False


def test_resume_false_recomputes(specs, tmp_path):
    run_dir = str(tmp_path / "run")
    pipeline.run_pipeline(make_cfg(["data"]), run_dir)
    pipeline.run_pipeline(make_cfg(["data"], resume=False), run_dir)
    assert runs(tmp_path, "data") == 2
