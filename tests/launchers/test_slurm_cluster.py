"""launchers/slurm_cluster.sh against the real daemons: config, CPU binding, submitit, hard failures."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm


def wait_job(job_id: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline, f"job {job_id} still queued after {timeout} s"
        time.sleep(0.2)


def test_status_and_idempotent_start(slurm_cluster, cluster_cmd):
    cluster = cluster_cmd
    st = cluster("status")
    assert st.returncode == 0 and re.search(r"slurmctld: running \(pid \d+\)", st.stdout)
    t0 = time.time()
    again = cluster("start")
    assert again.returncode == 0 and "already running" in again.stderr and time.time() - t0 < 5


def test_config_avoids_the_known_pitfalls(slurm_cluster):
    conf = open("/etc/slurm/slurm.conf").read()
    assert "written by stratos launchers/slurm_cluster.sh" in conf
    for line in ("TaskPlugin=task/affinity", "ProctrackType=proctrack/linuxproc", "SelectType=select/cons_tres",
                 "SelectTypeParameters=CR_Core", "MpiDefault=none", "MailProg=/bin/true"):
        assert line in conf.splitlines()
    assert not os.path.exists("/etc/slurm/cgroup.conf")
    geometry = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout.split("\n")[0]
    node = next(line for line in conf.splitlines() if line.startswith("NodeName="))
    for key in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"):
        assert re.search(rf"\b{key}=(\d+)", geometry).group(0) in node


def test_sbatch_round_trip_binds_cpus(slurm_cluster, tmp_path):
    out = tmp_path / "out.txt"
    job = subprocess.run(["sbatch", "--parsable", "-c", "1", "-o", str(out), "--wrap",
                          "nproc; python -c 'import os; print(len(os.sched_getaffinity(0)))'"],
                         capture_output=True, text=True, check=True).stdout.strip()
    wait_job(job)
    assert out.read_text().split() == ["1", "1"]  # task/affinity: a -c 1 job sees one CPU


def test_submitit_round_trip_reports_real_states(slurm_cluster, tmp_path):
    import submitit

    ex = submitit.AutoExecutor(folder=str(tmp_path / "%j"), cluster="slurm")
    ex.update_parameters(timeout_min=5, slurm_partition=slurm_cluster, cpus_per_task=1)
    job = ex.submit(pow, 2, 10)
    assert job.result() == 1024
    deadline = time.time() + 60
    while job.state != "COMPLETED":  # accounting (slurmdbd) on: sacct knows the state
        assert time.time() < deadline, f"state stayed {job.state}"
        time.sleep(1)
        job.watcher.clear()


def die_hard() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # no result file can be written


@pytest.mark.timeout(240)  # a broken accounting DB would make job.result() wait forever: fail instead
def test_job_killed_hard_fails_instead_of_hanging(slurm_cluster, tmp_path):
    """Why accounting is on by default: without sacct submitit would wait for this job forever."""
    import submitit

    ex = submitit.AutoExecutor(folder=str(tmp_path / "%j"), cluster="slurm")
    ex.update_parameters(timeout_min=5, slurm_partition=slurm_cluster)
    job = ex.submit(die_hard)
    t0 = time.time()
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="FAILED|CANCELLED"):
        job.result()
    assert time.time() - t0 < 120


def test_stop_then_start_again(slurm_cluster, cluster_cmd):
    """Last in this file: stop drains and stops every daemon by PID; start brings the partition back."""
    assert cluster_cmd("stop", timeout=120).returncode == 0
    assert cluster_cmd("status").returncode == 3
    assert subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 1
    assert cluster_cmd("start").returncode == 0
    assert cluster_cmd("status").returncode == 0
