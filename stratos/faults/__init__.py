"""Surviving faults: preemption, exact resume, crash-safe shared caches.

What each fault meets (evidence: tests/faults/, tests/launchers/):

  signal USR1/USR2/TERM mid-training  -> `preempt.PreemptionCheckpoint`: checkpoint at the end of
                                         the step, requeue (Slurm/submitit) or exit 75 (local)
  requeued / re-run job               -> pipeline reuses finished stages (manifests); distill
                                         resumes from `checkpoints.latest_checkpoint` with the
                                         data order of `loader.ResumableLoader` => same final metrics
  kill -9 anywhere                    -> artifacts are written atomically and the manifest last;
                                         a cut checkpoint is skipped (`checkpoints.checkpoint_ok`)
  concurrent sweep jobs on one cache  -> `cache.SharedCache`: exclusive-create lock + atomic rename
  DDP vs one process                  -> `loader.ResumableLoader` hands rank r its slice of the same
                                         global batch

The distill trainer wires it with `trainer_kwargs(callbacks)`.
"""

from __future__ import annotations

from stratos.faults.cache import SharedCache, cache_key
from stratos.faults.checkpoints import checkpoint_ok, latest_checkpoint
from stratos.faults.loader import ResumableLoader, ResumableSampler
from stratos.faults.preempt import EXIT_PREEMPTED, Preempted, PreemptionCheckpoint, slurm_plugins

__all__ = [
    "EXIT_PREEMPTED", "Preempted", "PreemptionCheckpoint", "ResumableLoader", "ResumableSampler", "SharedCache",
    "cache_key", "checkpoint_ok", "latest_checkpoint", "slurm_plugins", "trainer_kwargs",
]


def trainer_kwargs(callbacks: list | None = None) -> dict:
    """Keyword arguments for `lightning.Trainer` that make a run preemptible and exactly resumable.

        trainer = L.Trainer(..., **trainer_kwargs([ckpt_cb, curve_cb]))
        trainer.fit(module, ResumableLoader(ds, per_device_batch, seed=seed, ...), val_loader,
                    ckpt_path=latest_checkpoint(ckpt_dir))

    `use_distributed_sampler=False`: the ResumableLoader splits batches across ranks itself
    (Lightning's DistributedSampler would reshuffle and break both resume and DDP = 1 process).
    """
    return {
        "callbacks": [*(callbacks or []), PreemptionCheckpoint()],
        "plugins": slurm_plugins(),
        "use_distributed_sampler": False,
    }
