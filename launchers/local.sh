#!/usr/bin/env bash
# A Stratos sweep as local processes (submitit), then one sweep summary (table, JSON, Pareto plot).
#   launchers/local.sh +task=mahjong student=tiny_llama,smollm2_360m strategy=alignment,injection
# Same job/checkpoint/requeue code paths as launchers/slurm.sh, without a cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m stratos -m hydra/launcher=stratos_local \
  ++hydra.callbacks.sweep_summary._target_=stratos.sweep.SweepSummary "$@"
