"""The plan stage through its StageContext, and the CLI answer (`python -m stratos ... pipeline.stages=[plan]`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stratos import artifacts
from stratos.artifacts import StageContext
from stratos.plan.stage import run

ROOT = Path(__file__).resolve().parents[2]


def test_stage_writes_plan_png_and_metrics(cfg_factory, tmp_path, capsys):
    cfg = cfg_factory()
    ctx = StageContext(run_dir=str(tmp_path), stage="plan", config_hash="abc")
    m = run(cfg, ctx)
    plan = artifacts.read_json(m.path("plan.json"))
    assert Path(m.path("pareto.png")).read_bytes()[:4] == b"\x89PNG"
    assert m.metrics["plan/candidates"] == plan["candidates"] and m.metrics["plan/pareto"] == plan["pareto"]
    assert m.metrics["plan/score"] == plan["selected"]["score"]
    out = capsys.readouterr().out
    assert "chosen" in out and "accuracy_first" in out and f"{plan['pareto']} on the Pareto front" in out


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "stratos", "+task=mahjong", "pipeline.stages=[plan]", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not (ROOT / "conf" / "deploy" / "onnx.yaml").exists(), reason="conf/deploy/onnx.yaml not there yet")
def test_cli_plans_in_seconds_and_fails_with_one_line(tmp_path):
    r = _cli(f"paths.output_root={tmp_path}", cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    plans = list(tmp_path.rglob("plan/plan.json"))
    assert len(plans) == 1 and (plans[0].parent / "pareto.png").exists()
    assert json.loads(plans[0].read_text())["selected"]["teacher"]
    r = _cli(f"paths.output_root={tmp_path}/bad", "constraints.budget_usd=0.000001", "servers.include_local=false", cwd=ROOT)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "binding: constraints.budget_usd=1e-06" in lines[0]
