"""Run the pipeline command as one Slurm job through submitit, sized from a catalog row and the plan.

    launch = submit(row, stratos_command(...), est_hours=2.0, slurm=cfg.servers.slurm, folder=run_dir + "/.slurm")
    state, rc = wait(launch)

submitit writes the sbatch script, the job's stdout/stderr logs and its result into `folder`; it also
arranges the USR2 warning before the time limit and the requeue after it (the command is wrapped in
`ResumableCommand`, so a requeued job reruns the same command, which resumes finished stages).
`partition_status` asks `sinfo` whether the chosen partition can take the job at all, so the CLI can
refuse in one line before submitting.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import submitit
from submitit.core.utils import FailedJobError
from submitit.helpers import Checkpointable, CommandFunction

MARGIN = 1.5  # the plan's time estimate is a model: give the job half as much again
STARTUP_MIN = 5  # imports, data loading, checkpoint reload after a requeue
MIN_TIMEOUT_MIN = 5
SINFO_TIMEOUT_S = 30
# Slurm states after which a job will not run again (submitit counts the others as unfinished).
UNFINISHED = {"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED",
              "CONFIGURING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED"}


class ResumableCommand(CommandFunction, Checkpointable):
    """A `CommandFunction` that submitit requeues after a time-out: it reruns the same command.

    Plain `CommandFunction` is not checkpointable, so submitit would let a timed-out job die. The
    Stratos command resumes by itself (`pipeline.resume=true`, training checkpoints), so resubmitting
    it unchanged is the right checkpoint. A failing command's exit code goes into the job's error
    (submitit's own process always exits 1, so sacct cannot tell it).
    """

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        try:
            return super().__call__(*args, **kwargs)
        except FailedJobError as e:
            if isinstance(e.__cause__, subprocess.CalledProcessError):
                raise FailedJobError(f"command {self.command[:3]}... exited with code {e.__cause__.returncode}") from e
            raise


@dataclass
class SlurmLaunch:
    """A submitted job: its id, the submitit folder (sbatch script, logs, result) and the parameters used."""

    job_id: str
    folder: str
    parameters: dict[str, Any]
    job: submitit.Job = field(repr=False)

    @property
    def stdout(self) -> Path:
        return self.job.paths.stdout

    @property
    def stderr(self) -> Path:
        return self.job.paths.stderr


def timeout_min(est_hours: float, margin: float = MARGIN, startup_min: int = STARTUP_MIN) -> int:
    r"""Slurm time limit for a run the plan estimates at `est_hours`.

    $$ t = \max(5,\ \lceil 60\, h \cdot \mathrm{margin} \rceil + \mathrm{startup}) \quad \text{minutes} $$
    """
    if not est_hours >= 0 or math.isinf(est_hours):
        raise ValueError(f"est_hours must be a finite number >= 0, got {est_hours!r}")
    return max(MIN_TIMEOUT_MIN, math.ceil(est_hours * 60 * margin) + startup_min)


def slurm_parameters(row: Mapping[str, Any], est_hours: float, slurm: Mapping[str, Any] | None = None,
                     margin: float = MARGIN, startup_min: int = STARTUP_MIN) -> dict[str, Any]:
    """submitit `update_parameters` keywords for catalog `row` and `servers.slurm` settings `slurm`.

    The row says where and on what (partition, GPUs, CPUs); `slurm` adds the site's account, QoS,
    memory and signal delay. Unset (None) settings are left out so the cluster's defaults apply.
    """
    slurm = dict(slurm or {})
    params: dict[str, Any] = {"slurm_partition": row["partition"],
                              "timeout_min": timeout_min(est_hours, margin, startup_min),
                              "nodes": 1, "tasks_per_node": 1}
    if str(row.get("gpu", "cpu")).lower() != "cpu":
        params["gpus_per_node"] = int(row["gpu_count"])
    cpus = row.get("cpus", slurm.get("cpus_per_task"))
    if cpus is not None:
        params["cpus_per_task"] = int(cpus)
    for key, name in (("account", "slurm_account"), ("qos", "slurm_qos"), ("mem_gb", "mem_gb"),
                      ("signal_delay_s", "slurm_signal_delay_s")):
        if slurm.get(key) is not None:
            params[name] = slurm[key]
    return params


def submit(row: Mapping[str, Any], command: list[str], est_hours: float, slurm: Mapping[str, Any] | None,
           folder: str | Path, job_name: str = "stratos") -> SlurmLaunch:
    """Submit `command` (an argv list) as one Slurm job on `row["partition"]`; returns at once.

    `slurm` is `servers.slurm` as a dict (account, qos, mem_gb, signal_delay_s, max_requeue, ...).
    """
    slurm = dict(slurm or {})
    params = slurm_parameters(row, est_hours, slurm)
    params["name"] = job_name
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm",
                                     slurm_max_num_timeout=int(slurm.get("max_requeue", 3)))
    executor.update_parameters(**params)
    job = executor.submit(ResumableCommand(list(command)))
    return SlurmLaunch(job_id=str(job.job_id), folder=str(folder), parameters=params, job=job)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def exit_code(job_id: str) -> int | None:
    """The job's exit code from `sacct` (None when accounting is unavailable)."""
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "ExitCode"], capture_output=True,
                             text=True, timeout=SINFO_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.strip().splitlines()[:1]
    return int(first[0].split(":")[0]) if out.returncode == 0 and first and first[0][:1].isdigit() else None


def wait(launch: SlurmLaunch, poll_s: float = 5.0, out=None) -> tuple[str, int | None]:
    """Block until the job has finished; print one line each time its state changes.

    Returns (final Slurm state, exit code from sacct) for a job that completed. A job that ended in
    any other state (FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, ...) raises RuntimeError
    naming the job id, the state and the tail of its stderr log: that is a failed run, not a user error.
    """
    out = out or sys.stdout
    job, last, start = launch.job, None, time.time()
    while True:
        state = job.watcher.get_state(launch.job_id, mode="force")
        if state != last:
            print(f"slurm job {launch.job_id}: {state} ({time.time() - start:.0f} s)", file=out, flush=True)
            last = state
        base = (state.split() or ["UNKNOWN"])[0].upper()  # "CANCELLED by 0" -> "CANCELLED"
        # Without accounting sacct says UNKNOWN forever; submitit's result file then tells it is over.
        if base not in UNFINISHED or (base == "UNKNOWN" and job.paths.result_pickle.exists()):
            break
        time.sleep(poll_s)
    # submitit's job process exits non-zero when the command fails, so Slurm's state is the verdict;
    # without accounting (UNKNOWN) the pickled result is.
    failed = job.exception() is not None if base == "UNKNOWN" else base != "COMPLETED"
    rc = exit_code(launch.job_id)
    if failed:
        raise RuntimeError(f"slurm job {launch.job_id} ended {state} (job exit code {rc}); "
                           f"last lines of {launch.stderr}:\n{_tail(launch.stderr)}")
    return state, rc


def gpu_count(gres: str) -> int:
    """GPUs per node in an sinfo GRES string: `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:2`, `(null)`."""
    total = 0
    for item in re.split(r",(?![^(]*\))", gres or ""):
        parts = re.sub(r"\(.*\)$", "", item.strip()).split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def _int(field_: str) -> int | None:
    m = re.match(r"\d+", field_)
    return int(m.group()) if m else None


def partition_status(name: str) -> tuple[bool, str, dict[str, Any]]:
    """Can Slurm partition `name` take a job now? (ok, reason in words, resources).

    Reads `sinfo -h -p NAME -o '%a %c %m %G %D'`. resources: avail, cpus (per node), mem_mb (per node),
    gres, gpus (per node, from gres), nodes. ok only when sinfo runs, the partition exists and is up.
    """
    if shutil.which("sinfo") is None:
        return False, "sinfo not found: no Slurm client on this machine", {}
    try:
        r = subprocess.run(["sinfo", "-h", "-p", name, "-o", "%a %c %m %G %D"], capture_output=True, text=True,
                           timeout=SINFO_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"sinfo did not answer within {SINFO_TIMEOUT_S} s (is slurmctld up?)", {}
    if r.returncode != 0:
        return False, f"sinfo failed (rc={r.returncode}): {r.stderr.strip()[:300]}", {}
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.strip()]
    if not rows:
        names = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                               timeout=SINFO_TIMEOUT_S, stdin=subprocess.DEVNULL).stdout.split()
        listed = ", ".join(sorted({n.rstrip("*") for n in names})) or "none"
        return False, f"partition {name!r} not found (partitions: {listed})", {}
    # One line per group of alike nodes: report the largest node and count them all.
    avail = rows[0][0]
    res = {"avail": avail, "cpus": max(_int(x[1]) or 0 for x in rows), "mem_mb": max(_int(x[2]) or 0 for x in rows),
           "gres": ",".join(sorted({x[3] for x in rows})), "gpus": max(gpu_count(x[3]) for x in rows),
           "nodes": sum(_int(x[4]) or 0 for x in rows)}
    if avail != "up":
        return False, f"partition {name!r} is {avail}", res
    return True, (f"partition {name!r} is up ({res['nodes']} nodes, {res['cpus']} CPUs, "
                  f"{res['gpus']} GPUs per node)"), res


def offers_gpus(resources: Mapping[str, Any], need_gpus: int) -> tuple[bool, str]:
    """Whether a partition (resources from `partition_status`) has nodes with `need_gpus` GPUs each."""
    have = int(resources.get("gpus", 0))
    if have >= need_gpus:
        return True, f"{have} GPUs per node (need {need_gpus})"
    return False, f"the partition's nodes have {have} GPUs (GRES {resources.get('gres', '(null)')!r}); need {need_gpus}"
