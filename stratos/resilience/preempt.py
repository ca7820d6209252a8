"""Preemption: on a signal, finish the current step, checkpoint, then requeue (Slurm) or exit.

Slurm tells a job it is about to lose its node with a signal: submitit asks for
`--signal=USR2@<signal_delay_s>` before the time limit, an admin or a test sends
`scancel --signal=USR1 <job>`, and preemption in `PreemptMode=REQUEUE` sends SIGTERM before
SIGKILL. `PreemptionCheckpoint` turns any of them into:

  1. the signal handler only *records* the signal (saving from inside a handler could catch
     the optimizer half-way through `step()`: weights updated, step counter not);
  2. at the end of the current training batch, every rank agrees to stop (any rank signalled
     => all stop, so DDP never deadlocks on one rank leaving) and `last.ckpt` is written
     through Lightning (atomic: fsspec transaction, temp file + rename);
  3. then it leaves:
       - inside a submitit job: calls submitit's own handler, which pickles the job again
         (`checkpoint()` of hydra-submitit-launcher re-runs the same Hydra job), runs
         `scontrol requeue` and exits — exactly what submitit does natively, only later;
       - inside a plain Slurm job: `scontrol requeue $SLURM_JOB_ID`, then exit;
       - anywhere else (or on SIGTERM, after which Slurm requeues or the user cancelled):
         exit with `EXIT_PREEMPTED` (75, EX_TEMPFAIL: "try again").
     Leaving raises SystemExit from the callback, so the distill stage never writes its manifest
     and the re-run (same Hydra job, same run dir) resumes from `last.ckpt`.

Lightning's own SLURM auto-requeue is switched off (`slurm_plugins()`): its handler saves from
inside the signal handler (point 1) and, without exiting, lets training run on until SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import lightning as L
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("stratos")

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: the run stopped cleanly and resumes when started again
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # checkpoint, then requeue
STOP_SIGNALS = (signal.SIGTERM,)  # checkpoint, then exit (Slurm requeues preempted jobs itself)


class Preempted(SystemExit):
    """Raised to leave training after the preemption checkpoint; exit code `EXIT_PREEMPTED`."""

    def __init__(self, signum: int) -> None:
        super().__init__(EXIT_PREEMPTED)
        self.signum = signum


# ---------------------------------------------------------------- Slurm / submitit helpers
def slurm_job_id() -> str | None:
    """The id `scontrol requeue` needs: `<array job>_<task>` for array jobs, else the job id."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def in_slurm_batch_job() -> bool:
    """True inside an sbatch job (not an interactive `srun --job-name=bash` shell)."""
    return slurm_job_id() is not None and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


@contextmanager
def sigterm_ignored_by_children() -> Iterator[None]:
    """Ignore SIGTERM while `scontrol requeue` runs, so the child inherits SIG_IGN through exec.

    Requeueing a running job makes Slurm signal every process of the job step, `scontrol` included,
    while `scontrol` is still waiting for, or has just got, its answer. When that SIGTERM lands
    before `scontrol` has exited (a race of milliseconds; seen once in CI on a loaded machine), it
    dies of it although the requeue went through: `check_call` raises, and the run ended as a
    failed sweep job instead of a requeued one. A signal ignored at exec stays ignored, so
    `scontrol` lives to exit 0. Ignoring it in this process costs nothing: it is leaving (submitit's
    own SIGTERM handler only logs "Bypassing signal SIGTERM").
    """
    if threading.current_thread() is not threading.main_thread():  # signal.signal works there only
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def requeue_slurm_job(job_id: str) -> bool:
    """`scontrol requeue <job_id>`; False (logged) when Slurm refuses (e.g. job not requeueable)."""
    try:
        with sigterm_ignored_by_children():
            subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60, capture_output=True, text=True)
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or e
        log.warning("preemption: scontrol requeue %s failed: %s", job_id, str(detail).strip())
        return False
    log.warning("preemption: requeued Slurm job %s", job_id)
    return True


def _submitit_handler(handlers: dict[int, Any]) -> Callable | None:
    """submitit's bound `SignalHandler.checkpoint_and_try_requeue`, if one of `handlers` is it."""
    for h in handlers.values():
        owner = getattr(h, "__self__", None)
        if owner is not None and type(owner).__module__.startswith("submitit") and \
                getattr(h, "__name__", "") == "checkpoint_and_try_requeue":
            return h
    return None


def _not_lightnings(prev: Any) -> list:
    """The handlers in `prev` other than Lightning's own SIGTERM notifier.

    Lightning composes its notifier with whatever handler it found (`_HandlersCompose`). The notifier
    sets `trainer.received_sigterm`, on which Lightning's loops raise `SIGTERMException` -- a
    `SystemExit` with status 0 -- at their next check. That races our checkpoint: a signal landing
    after our `on_train_batch_end` but before the loop's check made a preempted run exit 0 with no
    checkpoint (seen once in CI). It would also kill DDP children before the collective checkpoint.
    """
    inner = getattr(prev, "signal_handlers", None) if type(prev).__name__ == "_HandlersCompose" else None
    if inner is None:
        return [prev]
    return [h for h in inner if type(getattr(h, "__self__", None)).__name__ != "_SignalConnector"]


def _call_previous(signum: int, frame: Any, prev: Any) -> None:
    """Act as handler `prev` would have: call it, or for SIG_DFL re-deliver with the default action."""
    if callable(prev):
        prev(signum, frame)
    elif prev in (signal.SIG_DFL, None):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def slurm_plugins() -> list:
    """Trainer plugins: inside Slurm, Lightning's SLURMEnvironment *without* its auto-requeue."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    # Lightning's own test (SLURMEnvironment.detect) without its "srun is not used" warning.
    on_slurm = "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    return [SLURMEnvironment(auto_requeue=False)] if on_slurm else []


# ---------------------------------------------------------------- the callback
class PreemptionCheckpoint(Callback):
    """Checkpoint to `<ModelCheckpoint dirpath>/last.ckpt` on USR1/USR2/TERM, then requeue or exit.

    Add it to the Trainer's callbacks together with `slurm_plugins()`. A run resumes by passing
    `ckpt_path=latest_checkpoint(dirpath)` to `trainer.fit` (see stratos.resilience.checkpoints).
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt",
                 requeue_signals: tuple[int, ...] = REQUEUE_SIGNALS,
                 stop_signals: tuple[int, ...] = STOP_SIGNALS) -> None:
        self.dirpath, self.filename = dirpath, filename
        self.requeue_signals, self.stop_signals = tuple(requeue_signals), tuple(stop_signals)
        self.received: int | None = None  # last signal number seen (set by the handler only)
        self.saved_path: str | None = None
        self._previous: dict[int, Any] = {}  # signal -> handler installed before ours
        self._active = False

    # -- signal plumbing (main thread only: Python delivers signals there)
    def _handler(self, signum: int, frame: Any) -> None:
        prev = self._previous.get(signum)
        if not self._active:
            # Installed but training is over (Lightning may restore us as "its original" SIGTERM
            # handler): behave exactly like whatever was there before us.
            _call_previous(signum, frame, prev)
            return
        self.received = signum
        # On SIGTERM also tell a previous user handler; never Lightning's notifier (see
        # _not_lightnings) nor submitit's requeue handler: both would end the run before the checkpoint.
        if signum in self.stop_signals:
            for h in _not_lightnings(prev):
                if callable(h) and _submitit_handler({signum: h}) is None:
                    h(signum, frame)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not in `setup`: Lightning registers its own handlers just before training and on
        # teardown puts back whatever it found then; installing after it keeps us out of that list.
        if threading.current_thread() is not threading.main_thread():
            return
        self.received, self.saved_path = None, None
        for sig in (*self.requeue_signals, *self.stop_signals):
            current = signal.getsignal(sig)
            if current != self._handler:  # a second fit() must not chain us to ourselves
                self._previous[sig] = current
            signal.signal(sig, self._handler)
        self._active = True

    def _restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._active = False
        for sig, prev in self._previous.items():
            if signal.getsignal(sig) == self._handler:
                signal.signal(sig, prev if prev is not None else signal.SIG_DFL)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._restore()

    # -- the safe point
    def checkpoint_path(self, trainer: L.Trainer) -> str:
        d = self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None) or trainer.default_root_dir
        return os.path.join(str(d), self.filename)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # One boolean all-reduce per step under DDP (any rank => all ranks); free on one process.
        if not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        signum = self.received if self.received is not None else int(signal.SIGUSR1)
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)  # collective; rank 0 writes (atomically)
        self.saved_path = path
        log.warning("preemption: %s at step %d -> checkpoint %s", signal.Signals(signum).name, trainer.global_step,
                    path)
        self._leave(signum, trainer.is_global_zero)

    def _leave(self, signum: int, is_global_zero: bool) -> None:
        if signum in self.requeue_signals:
            sub = _submitit_handler(self._previous)
            if sub is not None:
                # requeues + sys.exit on rank 0; returns on other ranks (they leave below)
                with sigterm_ignored_by_children():  # its `scontrol requeue` must outlive Slurm's SIGTERM
                    sub(signum, None)
            elif is_global_zero and in_slurm_batch_job():
                requeue_slurm_job(str(slurm_job_id()))
        raise Preempted(signum)
