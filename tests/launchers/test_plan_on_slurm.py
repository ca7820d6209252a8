"""A plan that picks the Slurm partition runs there (sacct shows the job) and ends with the same
artifacts as a run on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slurm

FAST = ["+task=mahjong", "debug=fast", "task.n_train=256", "task.n_val=32", "task.n_test=32", "trainer.num_threads=1"]


def cli(args, root):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("STRATOS_PLAN_OVERRIDES", None)
    return subprocess.run([sys.executable, "-m", "stratos", *args, f"paths.output_root={root}",
                           f"planner.history={root}/history.json"], capture_output=True, text=True, timeout=600,
                          env=env, stdin=subprocess.DEVNULL)


def run_dir_of(r):
    return next(x for x in (r.stdout + r.stderr).splitlines() if "run dir: " in x).split("run dir: ", 1)[1].strip()


def test_a_plan_that_picks_the_partition_runs_there(slurm_cluster, tmp_path):
    # the partition is cheaper per hour than this machine and cost weighs most: the plan picks it
    slurm = [f"servers.slurm.partition={slurm_cluster}", "servers.slurm.price_hour=0.0001",
             "planner.weights={accuracy: 0.05, latency: 0.05, train_time: 0.05, cost: 0.85}"]
    r = cli([*FAST, *slurm], tmp_path / "slurm")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    run_dir = run_dir_of(r)
    plan = json.load(open(os.path.join(run_dir, "plan", "plan.json")))
    assert plan["selected"]["server"] == f"slurm/{slurm_cluster}" and plan["selected"]["launcher"] == "slurm"
    job = next(x for x in (r.stdout + r.stderr).splitlines() if "as Slurm job" in x).rsplit(" ", 1)[1]
    acct = subprocess.run(["sacct", "-j", job, "-n", "-X", "-o", "JobID,State,Partition"], capture_output=True,
                          text=True).stdout
    assert job in acct and "COMPLETED" in acct and slurm_cluster in acct
    local = cli([*FAST, "servers.run_server=local"], tmp_path / "local")
    assert local.returncode == 0, local.stderr[-2000:]
    local_dir = run_dir_of(local)
    for stage in ("plan", "data", "distill", "evaluate", "export", "report"):
        assert os.path.exists(os.path.join(run_dir, stage, "manifest.json")), stage
    assert sorted(os.listdir(os.path.join(run_dir, "distill", "model"))) == sorted(
        os.listdir(os.path.join(local_dir, "distill", "model")))
    report = json.load(open(os.path.join(run_dir, "report.json")))
    assert report["plan"]["executed"]["server"] == f"slurm/{slurm_cluster}"
    assert json.load(open(os.path.join(run_dir, "ledger.json")))["rows"]  # the job's measurements were recorded
