"""The `slurm_cluster` fixture: the real single-node Slurm of launchers/slurm_cluster.sh.

Used as is when it is up (CI runs `launchers/slurm_cluster.sh up` first); started here when this
user is root (installing slurm-wlm + munge + mariadb/slurmdbd with apt-get if needed) and then
stopped again at the end of the session. Skipped, with the reason, only when Slurm genuinely
cannot run: not installed and not root, or the install/start itself failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = str(ROOT / "launchers" / "slurm_cluster.sh")


def cluster(cmd: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([CLUSTER, cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def cluster_cmd():
    """`cluster_cmd("status")` runs launchers/slurm_cluster.sh status (CompletedProcess)."""
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster():
    if shutil.which("sbatch") and cluster("status").returncode == 0:
        yield "debug"
        return
    if os.geteuid() != 0:
        where = "installed but not running" if shutil.which("slurmctld") else "not installed"
        pytest.skip(f"Slurm is {where} and this user is not root, so launchers/slurm_cluster.sh cannot "
                    f"install/start it: run `sudo launchers/slurm_cluster.sh up` first")
    r = cluster("up")
    if r.returncode != 0:
        pytest.skip(f"launchers/slurm_cluster.sh up failed (rc={r.returncode}): {r.stderr.strip()[-500:]}")
    yield "debug"
    cluster("stop", timeout=120)
