"""A plan that picks the Slurm partition runs there (sacct shows the job) and ends with the same
artifacts as a run on this machine."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers.slurm_jobs import run_results, slurm_story, start_requeued_now

pytestmark = pytest.mark.slurm

def cheap_partition(partition: str) -> list[str]:
    """The partition far cheaper per hour than this machine, and cost weighing most: the plan picks it."""
    return [f"servers.slurm.partition={partition}", "servers.slurm.price_hour=0.0001",
            "planner.weights={accuracy: 0.05, latency: 0.05, train_time: 0.05, cost: 0.85}"]


FAST = ["+task=mahjong", "debug=fast", "task.n_train=256", "task.n_val=32", "task.n_test=32", "trainer.num_threads=1"]


def argv(args, root):
    return [sys.executable, "-m", "stratos", *args, f"paths.output_root={root}", f"planner.history={root}/history.json"]


def env():
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    e.pop("STRATOS_PLAN_OVERRIDES", None)
    return e


def cli(args, root):
    return subprocess.run(argv(args, root), capture_output=True, text=True, timeout=600, env=env(),
                          stdin=subprocess.DEVNULL)


def run_dir_in(output: str) -> str:
    return next(x for x in output.splitlines() if "run dir: " in x).split("run dir: ", 1)[1].strip()


def run_dir_of(r):
    return run_dir_in(r.stdout + r.stderr)


def test_a_plan_that_picks_the_partition_runs_there(slurm_cluster, tmp_path):
    slurm = cheap_partition(slurm_cluster)
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


@pytest.mark.slow
def test_the_plans_slurm_job_survives_its_time_limit_warning_and_ends_as_an_uninterrupted_run(slurm_cluster,
                                                                                              tmp_path):
    """USR2 mid-distill (what Slurm sends `signal_delay_s` before the time limit) to the job the plan launched:
    submitit requeues it, the command's stratos process checkpoints at the end of its step, the second life
    resumes distill, and the weights equal a run on this machine that nobody interrupted."""
    small = [*FAST[:2], "task.n_train=128", "task.n_val=16", "task.n_test=8", "trainer.num_threads=1",
             "trainer.max_steps=400", "trainer.checkpoint_every_n_steps=25",
             "pipeline.stages=[plan,data,distill,evaluate]"]
    root, log = tmp_path / "slurm", tmp_path / "slurm.log"
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        p = subprocess.Popen(argv([*small, *cheap_partition(slurm_cluster)], root), stdout=out,
                             stderr=subprocess.STDOUT, env=env(), stdin=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not glob.glob(f"{root}/**/distill/checkpoints/step_*.ckpt", recursive=True):
        assert time.time() < deadline and p.poll() is None, "distill never checkpointed:\n" + log.read_text()[-3000:]
        time.sleep(0.1)
    time.sleep(0.2)  # between two checkpoints
    job = log.read_text().split("as Slurm job ", 1)[1].split()[0]
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    run_dir = run_dir_in(log.read_text())
    submitit = os.path.join(run_dir, ".submitit")
    try:
        assert "Restarts=1" in start_requeued_now(job, p)
        assert p.wait(timeout=600) == 0, log.read_text()[-3000:]
    except AssertionError as e:
        raise AssertionError(f"{e}\n{slurm_story(job, submitit)}") from None
    job_logs = "".join(open(f).read() for f in glob.glob(os.path.join(submitit, "*_log.*")))
    assert "Requeued job" in job_logs and "resuming distill from" in job_logs
    assert f"Slurm job {job} ended COMPLETED" in log.read_text()
    # both lives in accounting (the CLI polls every 5 s and may never see the short REQUEUED state itself)
    deadline = time.time() + 60  # slurmctld reports to slurmdbd a moment after the job ends
    while (states := subprocess.run(["sacct", "-n", "-X", "-D", "-j", job, "-o", "State"], capture_output=True,
                                     text=True).stdout.split()) != ["REQUEUED", "COMPLETED"]:
        assert time.time() < deadline, states
        time.sleep(1)

    local = cli([*small, "servers.run_server=local"], tmp_path / "local")
    assert local.returncode == 0, local.stderr[-2000:]
    assert run_results(run_dir) == run_results(run_dir_of(local))
