"""stratos.launch.slurm: time limits, submitit parameters, sinfo parsing, and real jobs on the `debug` partition."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import uuid

import pytest

from stratos.launch import slurm
from stratos.launch.slurm import (gpu_count, offers_gpus, partition_status, slurm_parameters, submit, timeout_min,
                                  wait)

CPU_ROW = {"name": "slurm/debug/local", "partition": "debug", "gpu": "cpu", "gpu_count": 1, "cpus": 1}
GPU_ROW = {"name": "slurm/a100/site", "partition": "gpu", "gpu": "A100-80", "gpu_count": 4}


# ---------------------------------------------------------------- arithmetic and parameters (no cluster)

@pytest.mark.parametrize("hours,expected", [(1.0, 95), (2.0, 185), (0.01, 6), (0.0, 5), (1 / 60, 7)])
def test_timeout_is_margin_times_estimate_plus_startup(hours, expected):
    assert timeout_min(hours) == expected == max(5, math.ceil(hours * 60 * 1.5) + 5)


def test_timeout_floor_and_knobs():
    assert timeout_min(0.001, margin=1.0, startup_min=0) == 5  # never below 5 minutes
    assert timeout_min(10, margin=1.2, startup_min=10) == 730
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            timeout_min(bad)


def test_parameters_from_row_and_site_settings():
    p = slurm_parameters(GPU_ROW, 2.0, {"account": "lab", "qos": "high", "mem_gb": 64, "signal_delay_s": 120,
                                        "cpus_per_task": 8, "partition": None, "max_requeue": 3})
    assert p == {"slurm_partition": "gpu", "timeout_min": 185, "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 4,
                 "cpus_per_task": 8, "slurm_account": "lab", "slurm_qos": "high", "mem_gb": 64,
                 "slurm_signal_delay_s": 120}


def test_cpu_row_asks_no_gpus_and_row_cpus_win():
    p = slurm_parameters(CPU_ROW, 0.5, {"cpus_per_task": 8, "account": None, "qos": None})
    assert "gpus_per_node" not in p and p["cpus_per_task"] == 1
    assert not {"slurm_account", "slurm_qos", "mem_gb"} & set(p)  # None: the cluster's default applies


@pytest.mark.parametrize("gres,n", [("(null)", 0), ("", 0), ("gpu:4", 4), ("gpu:a100:4", 4), ("gpu:a100:4(S:0-1)", 4),
                                    ("gpu:a100:2,gpu:v100:2", 4), ("gpu:h100:8(S:0-1),shard:16", 8), ("shard:4", 0)])
def test_gpu_count_from_gres(gres, n):
    assert gpu_count(gres) == n


def test_offers_gpus():
    assert offers_gpus({"gpus": 4, "gres": "gpu:a100:4"}, 4)[0]
    ok, why = offers_gpus({"gpus": 0, "gres": "(null)"}, 1)
    assert not ok and "(null)" in why and "need 1" in why


def test_no_sinfo_on_this_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no Slurm client
    assert partition_status("debug") == (False, "sinfo not found: no Slurm client on this machine", {})


# ---------------------------------------------------------------- the real cluster

@pytest.mark.slurm
def test_debug_partition_is_up(slurm_cluster):
    ok, why, res = partition_status(slurm_cluster)
    assert ok, why
    assert res["avail"] == "up" and res["nodes"] >= 1 and res["cpus"] >= 1 and res["mem_mb"] > 0
    assert res["gpus"] == gpu_count(res["gres"])
    assert offers_gpus(res, 0)[0]


@pytest.mark.slurm
def test_missing_partition_names_the_real_ones(slurm_cluster):
    ok, why, res = partition_status("no_such_partition")
    assert not ok and res == {}
    assert why.startswith("partition 'no_such_partition' not found (partitions: ") and slurm_cluster in why


@pytest.mark.slurm
def test_down_partition(slurm_cluster):
    """A partition created down on the same node (scontrol), removed afterwards; `debug` is untouched."""
    name = f"stratos_down_{uuid.uuid4().hex[:6]}"
    node = subprocess.run(["sinfo", "-h", "-p", slurm_cluster, "-o", "%N"], capture_output=True,
                          text=True).stdout.strip()
    r = subprocess.run(["scontrol", "create", f"partitionname={name}", f"nodes={node}", "state=down"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this Slurm does not allow creating a partition here: {r.stderr.strip()}")
    try:
        ok, why, res = partition_status(name)
        assert not ok and why == f"partition {name!r} is down" and res["avail"] == "down"
    finally:
        subprocess.run(["scontrol", "delete", f"partitionname={name}"], check=True)


def sacct_row(job_id: str, timeout: float = 20) -> list[str]:
    """The job's accounting record; slurmdbd fills some fields (Partition) a moment after the job ends."""
    deadline = time.time() + timeout
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State,Partition,ExitCode"],
                             capture_output=True, text=True, check=True).stdout
        row = out.strip().split("|")
        if all(row) or time.time() > deadline:
            return row
        time.sleep(0.5)


@pytest.mark.slurm
def test_real_job_runs_and_sacct_shows_it(slurm_cluster, tmp_path, capsys):
    launch = submit({**CPU_ROW, "partition": slurm_cluster}, [sys.executable, "-c", "print(40 + 2)"], est_hours=0.01,
                    slurm={"signal_delay_s": 60, "max_requeue": 1}, folder=tmp_path / "slurm")
    assert launch.parameters["timeout_min"] == 6 and launch.parameters["slurm_partition"] == slurm_cluster
    script = (tmp_path / "slurm" / f"{launch.job_id}_submission.sh").read_text()
    assert f"#SBATCH --partition={slurm_cluster}" in script and "#SBATCH --time=6" in script
    assert "#SBATCH --signal=USR2@60" in script and "#SBATCH --cpus-per-task=1" in script
    state, rc = wait(launch, poll_s=0.5)
    assert (state, rc) == ("COMPLETED", 0)
    assert "42" in launch.stdout.read_text().splitlines()
    assert sacct_row(launch.job_id) == [launch.job_id, "COMPLETED", slurm_cluster, "0:0"]
    progress = capsys.readouterr().out.splitlines()
    assert progress[-1].startswith(f"slurm job {launch.job_id}: COMPLETED")


@pytest.mark.slurm
def test_failed_job_raises_with_state_and_stderr(slurm_cluster, tmp_path):
    code = "import sys; print('it broke here', file=sys.stderr); sys.exit(3)"
    launch = submit({**CPU_ROW, "partition": slurm_cluster}, [sys.executable, "-c", code], 0.01, {}, tmp_path)
    with pytest.raises(RuntimeError) as e:
        wait(launch, poll_s=0.5)
    msg = str(e.value)
    assert msg.startswith(f"slurm job {launch.job_id} ended FAILED")
    assert "it broke here" in msg and "exited with code 3" in msg
    assert sacct_row(launch.job_id)[1] == "FAILED"


def test_resumable_command_is_checkpointable():
    """submitit requeues a timed-out job only for Checkpointable callables: the checkpoint reruns the command."""
    cmd = slurm.ResumableCommand(["true"])
    again = cmd.checkpoint()
    assert again.function is cmd and again.args == ()
