"""Resilience: surviving preemption, crashes and concurrent jobs (exact resume, crash-safe shared caches).

What each fault meets (evidence: tests/resilience/, tests/launchers/):

  signal USR1/USR2/TERM mid-training  -> `preempt.PreemptionCheckpoint`: checkpoint at the end of
                                         the step, requeue (Slurm/submitit) or exit 75 (local)
  requeued / re-run job               -> pipeline reuses finished stages (manifests); distill
                                         resumes from `checkpoints.latest_checkpoint` with the
                                         data order of `loader.ResumableLoader` => same final metrics
  kill -9 anywhere                    -> artifacts are written atomically and the manifest last;
                                         a cut checkpoint is skipped (`checkpoints.checkpoint_ok`)
  concurrent sweep jobs on one cache  -> `cache.SharedCache` / `cache.compute_once`: exclusive-create
                                         lease lock (computed once) + atomic rename (never torn)
  DDP vs one process                  -> `loader.ResumableLoader` hands rank r its slice of the same
                                         global batch

The distill trainer wires it with `trainer_kwargs(callbacks)`.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy exports: `stratos.resilience.cache` is used by data/teacher code and by many small worker
# processes that must not pay Lightning's ~5 s import; the training helpers load it on demand.
_EXPORTS = {
    "SharedCache": "cache", "cache_key": "cache", "compute_once": "cache",
    "checkpoint_ok": "checkpoints", "latest_checkpoint": "checkpoints",
    "ResumableLoader": "loader", "ResumableSampler": "loader",
    "EXIT_PREEMPTED": "preempt", "Preempted": "preempt", "PreemptionCheckpoint": "preempt",
    "slurm_plugins": "preempt",
}
__all__ = [*_EXPORTS, "trainer_kwargs"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"stratos.resilience.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'stratos.resilience' has no attribute {name!r}")


def trainer_kwargs(callbacks: list | None = None) -> dict:
    """Keyword arguments for `lightning.Trainer` that make a run preemptible and exactly resumable.

        trainer = L.Trainer(..., **trainer_kwargs([ckpt_cb, curve_cb]))
        trainer.fit(module, ResumableLoader(ds, per_device_batch, seed=seed, ...), val_loader,
                    ckpt_path=latest_checkpoint(ckpt_dir))

    `use_distributed_sampler=False`: the ResumableLoader splits batches across ranks itself
    (Lightning's DistributedSampler would reshuffle and break both resume and DDP = 1 process).
    """
    from stratos.resilience.preempt import PreemptionCheckpoint, slurm_plugins

    return {
        "callbacks": [*(callbacks or []), PreemptionCheckpoint()],
        "plugins": slurm_plugins(),
        "use_distributed_sampler": False,
    }
