#!/usr/bin/env bash
# A Stratos sweep as one Slurm job array, then one sweep summary (table, JSON, Pareto plot).
#   launchers/slurm.sh +task=mahjong student=a,b strategy=x,y servers.slurm.partition=gpu trainer=gpu
# Resources come from servers.slurm.* and trainer.devices (conf/hydra/launcher/stratos_slurm.yaml);
# GPU jobs: STRATOS_LAUNCHER=stratos_slurm_gpu. No cluster at hand: launchers/slurm_cluster.sh up.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v sbatch >/dev/null; then
  echo "launchers/slurm.sh: sbatch not found: run on a Slurm login node, or start a local cluster with" \
       "'sudo launchers/slurm_cluster.sh up'" >&2
  exit 2
fi
exec python -m stratos -m "hydra/launcher=${STRATOS_LAUNCHER:-stratos_slurm}" \
  ++hydra.callbacks.sweep_summary._target_=stratos.sweep.SweepSummary "$@"
