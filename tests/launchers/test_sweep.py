"""stratos.sweep: one table/JSON/plot for a sweep; the front matches brute force; a real Slurm sweep."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stratos import sweep
from stratos.errors import UserError


def make_run(root: Path, name: str, student: str, lr: float, metrics: dict[str, dict], stages=None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    cfg = {"student": {"name": student}, "trainer": {"lr": lr, "max_steps": 10}, "strategy": {"name": "alignment"},
           "paths": {"output_root": str(root / name)},
           "pipeline": {"stages": stages or ["data", "distill", "evaluate"]}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    for stage, m in metrics.items():
        (run / stage).mkdir()
        (run / stage / "manifest.json").write_text(json.dumps({"stage": stage, "config_hash": "x", "metrics": m}))
    return run


def ev(acc: float, lat: float) -> dict:
    return {"data": {"data/train/n": 10}, "distill": {"distill/train/loss": 1.0},
            "evaluate": {"evaluate/test/accuracy": acc, "evaluate/latency_ms_p50": lat}}


@pytest.fixture
def sweep_dir(tmp_path):
    make_run(tmp_path, "0", "a", 0.1, ev(0.9, 100))
    make_run(tmp_path, "1", "b", 0.1, ev(0.8, 50))
    make_run(tmp_path, "2", "c", 0.1, ev(0.7, 80))  # dominated by 1
    make_run(tmp_path, "3", "a", 0.2, ev(0.9, 120))  # dominated by 0
    make_run(tmp_path, "4", "b", 0.2, {"data": {"data/train/n": 10}})  # preempted: distill/evaluate missing
    (tmp_path / ".submitit" / "9_0").mkdir(parents=True)  # never mistaken for a run
    return tmp_path


def test_summary_table_json_and_plot(sweep_dir):
    s = sweep.summarize(str(sweep_dir))
    assert s["n_runs"] == 5 and s["n_done"] == 4
    assert s["varied"] == ["student.name", "trainer.lr"]  # paths.* differ too, but by construction
    assert s["pareto"] == ["0", "1"]
    runs = {r["name"]: r for r in s["runs"]}
    assert runs["4"]["status"] == "missing: distill,evaluate" and not runs["4"]["pareto"]
    assert runs["2"]["label"] == "student.name=c trainer.lr=0.1"
    assert json.loads((sweep_dir / "sweep_summary.json").read_text()) == json.loads(json.dumps(s))
    md = (sweep_dir / "sweep_summary.md").read_text()
    assert "| student.name=b trainer.lr=0.2 | b | 0.2 | missing: distill,evaluate |" in md
    assert "student.name=a trainer.lr=0.1; student.name=b trainer.lr=0.1" in md
    png = (sweep_dir / "sweep_pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_front_matches_brute_force_on_three_objectives(tmp_path):
    rng = random.Random(1)
    for i in range(40):
        make_run(tmp_path, f"r{i}", f"s{i}", 0.1, {"evaluate": {"evaluate/test/accuracy": rng.choice([.5, .6, .7, .8]),
                                                               "evaluate/latency_ms_p50": rng.randint(10, 30),
                                                               "plan/cost_usd": rng.randint(1, 5)}})
    objs = ["evaluate/test/accuracy:max", "evaluate/latency_ms_p50:min", "plan/cost_usd:min"]
    s = sweep.summarize(str(tmp_path), objs)
    pts = {r["name"]: (-r["metrics"]["evaluate/test/accuracy"], r["metrics"]["evaluate/latency_ms_p50"],
                       r["metrics"]["plan/cost_usd"]) for r in s["runs"]}

    def dominated(p, q):  # q dominates p (minimisation)
        return all(b <= a for a, b in zip(p, q)) and any(b < a for a, b in zip(p, q))

    brute = sorted(n for n, p in pts.items() if not any(dominated(p, q) for q in pts.values()))
    assert sorted(s["pareto"]) == brute and 0 < len(brute) < 40


def test_bad_objective_is_a_user_error(sweep_dir):
    with pytest.raises(UserError, match="objective"):
        sweep.summarize(str(sweep_dir), ["evaluate/test/accuracy:up"])


def test_cli(sweep_dir, capsys):
    assert sweep.main([str(sweep_dir), "--objective", "evaluate/latency_ms_p50:min"]) == 0
    assert "Pareto front over evaluate/latency_ms_p50 (min): student.name=b trainer.lr=0.1" in capsys.readouterr().out
    assert sweep.main([str(sweep_dir / "nope")]) == 2
    assert "sweep directory not found" in capsys.readouterr().err


SMALL = ["+task=mahjong", "debug=fast", "task.n_train=128", "task.n_val=16", "task.n_test=8", "evaluate.n_latency=2",
         "evaluate.max_new_tokens=48", "strategy.probe_n=4", "pipeline.stages=[data,distill,evaluate]"]


@pytest.mark.slurm
def test_stratos_sweep_on_slurm_gathers_every_job(slurm_cluster, tmp_path):
    """`python -m stratos -m ... hydra/launcher=stratos_slurm`: a Slurm array, then one summary."""
    r = subprocess.run([sys.executable, "-m", "stratos", "-m", *SMALL, "student.arch.hidden=32,64",
                        "hydra/launcher=stratos_slurm", f"hydra.sweep.dir={tmp_path}",
                        "++hydra.callbacks.sweep_summary._target_=stratos.sweep.SweepSummary"],
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert s["n_runs"] == s["n_done"] == 2 and s["varied"] == ["student.arch.hidden"]
    assert {r["params"]["student.arch.hidden"] for r in s["runs"]} == {32, 64}
    assert all(isinstance(r["metrics"]["evaluate/test/accuracy"], float) for r in s["runs"])
    assert len(s["pareto"]) >= 1 and (tmp_path / "sweep_pareto.png").exists()
    submitted = list((tmp_path / ".submitit").glob("*_0"))
    assert submitted and "_" in submitted[0].name  # one array job (<job>_<task> folders)


def test_job_user_error_reads_the_jobs_own_line():
    from submitit.core.utils import FailedJobError, UncompletedJobError

    text = ("Job 4242 (task: 0) with path /s/.submitit/4242/4242_0_result.pkl\nhas not produced any output "
            "(state: FINISHED)\nError stream produced:\n----------------------------------------\n"
            "[2026-12-06][INFO] - x\nstratos: error: invalid value for 'task.n_train': 0 (allowed: an integer > 0)\n")
    assert sweep.job_user_error(UncompletedJobError(text)) == \
        "sweep job 4242: invalid value for 'task.n_train': 0 (allowed: an integer > 0)"
    assert sweep.job_user_error(UncompletedJobError("Job 7 (task: 0) ...\nKilled")) is None  # no user line: a crash
    assert sweep.job_user_error(FailedJobError("Job 7 raised:\nTraceback ...\nKeyError: 'x'")) is None  # a bug
    assert sweep.job_user_error(RuntimeError(text)) is None  # not a submitit job error


def test_a_local_sweep_job_that_stops_on_a_user_mistake_prints_its_line(tmp_path):
    """Before: "Job ... has not produced any output" (submitit) and a traceback; now the job's own line, exit 2."""
    r = subprocess.run([sys.executable, "-m", "stratos", "-m", "+task=mahjong", "task.n_train=0,-1",
                        "pipeline.stages=[plan]", "hydra/launcher=stratos_local", f"hydra.sweep.dir={tmp_path}",
                        f"paths.output_root={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("stratos: error: sweep job ") and \
        "invalid value for 'task.n_train': 0 (allowed: an integer > 0)" in last, r.stderr
    assert "Traceback" not in r.stderr
