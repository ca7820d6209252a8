"""Reuse the real single-node Slurm fixture of tests/launchers (started there when absent, else skipped)."""

from tests.launchers.conftest import cluster_cmd, slurm_cluster  # noqa: F401
