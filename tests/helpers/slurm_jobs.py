"""Slurm job helpers for the tests that signal a real job: what Slurm recorded about it, an admin's
"start it now" for a requeued job that is safe against the credential race, and the results a preempted
run is compared on with an uninterrupted one."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path


def slurm_story(job_id: str, submitit_dir: str | Path) -> str:
    """Everything Slurm and submitit recorded about `job_id`, for the assertion message of a failure.

    A requeue race lasts a second and leaves no trace in pytest's output otherwise: both lives of the job in
    accounting, the controller's and the node daemon's log lines for it, and the job's own logs.
    """
    base = job_id.split("_")[0]
    parts = [subprocess.run(cmd, capture_output=True, text=True).stdout for cmd in (
        ["sacct", "-D", "-j", job_id, "-o", "JobID%20,State,ExitCode,Start,End,Submit"],
        ["scontrol", "show", "job", job_id])]
    for name in ("slurmctld.log", "slurmd.log"):
        path = Path(os.environ.get("STRATOS_SLURM_DIR", "/var/lib/stratos-slurm")) / "log" / name
        if path.exists():
            mine = re.compile(rf"(JobId=|[Jj]ob |JOB |StepId=|\[){base}\b")
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if mine.search(ln)]
            parts.append(f"--- {name}\n" + "\n".join(lines[-40:]))
    for f in sorted(glob.glob(os.path.join(submitit_dir, "**", "*_log.*"), recursive=True)):
        parts.append(f"--- {f}\n" + open(f, errors="replace").read()[-2500:])
    return "\n".join(parts)


def start_requeued_now(job_id: str, alive: "subprocess.Popen", timeout: float = 180) -> str:
    """Wait until `job_id` is back in the queue and its old incarnation is cleaned up, then start it.

    Slurm holds a requeued job for ~2 min (EligibleTime = now + 121 s: the job credential's lifetime
    + 1, hard-wired in slurmctld); an admin's "start now" keeps the tests short, but two conditions
    must hold first, or the new incarnation ends FAILED before running a line:
      - the node is idle again (the old incarnation is torn down);
      - the wall clock has entered a later second than the kill. slurmd revoked the old credential
        at the kill's time, in whole seconds, and refuses any credential of the same job created at
        or before it (`ctime <= revoked`): a restart within the same second is killed with
        "Killing non-startable batch JobId=N: Job credential revoked" (slurmctld.log), exit 1:0,
        and the job's error stream ends with the old incarnation's "srun: forcing job termination".
        That was this test's flake: a bare requeue-and-start-now loop ended FAILED 5 times in 25,
        and 0 in 15 once it waited for the next second.
    """
    deadline = time.time() + timeout
    while True:
        show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        node = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.split()
        if "JobState=PENDING" in show and node and all(n == "idle" for n in node):
            break
        if alive.poll() is not None or time.time() > deadline:
            said = alive.stdout.read()[-3000:] if getattr(alive, "stdout", None) else ""
            raise AssertionError(f"job was not requeued (submitter exit {alive.poll()}):\n{show}\nnode: {node}\n"
                                 f"--- submitter output\n{said}")
        time.sleep(0.05)  # poll fast: the restart comes as soon as Slurm allows, as in the race it guards
    time.sleep(1.05 - time.time() % 1)  # into the next second: the new credential must postdate the revocation
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "starttime=now"], check=True)
    return show


def run_results(run: str | Path) -> dict:
    """Final weights (sha256), distill losses and steps, test accuracy of a pipeline run directory."""
    run = Path(run)
    d = json.loads((run / "distill" / "manifest.json").read_text())["metrics"]
    e = json.loads((run / "evaluate" / "manifest.json").read_text())["metrics"]
    weights = hashlib.sha256(next((run / "distill" / "model").glob("*.safetensors")).read_bytes()).hexdigest()
    return {"train_loss": d["distill/train/loss"], "val_loss": d["distill/val/loss"], "steps": d["distill/steps"],
            "accuracy": e["evaluate/test/accuracy"], "weights": weights}
