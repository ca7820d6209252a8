"""PreemptionCheckpoint: a signal mid-training => checkpoint, exit 75, and a resume that ends bitwise
equal to the uninterrupted run (tiny Llama LM, tests/resilience/tiny_train.py, in this process: the
signals are real, sent with os.kill at an exact step).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from stratos.resilience import EXIT_PREEMPTED, PreemptionCheckpoint
from stratos.resilience.preempt import _submitit_handler, requeue_slurm_job, sigterm_ignored_by_children, slurm_job_id

sys.path.insert(0, os.path.dirname(__file__))
import tiny_train  # noqa: E402

STEPS = ["--steps", "30"]  # 96 rows / batch 8 = 12 batches per epoch: 30 steps cross two epoch ends


def final(d) -> dict:
    return json.loads((d / "final.json").read_text())


def curve(d) -> list[dict]:
    return [json.loads(line) for line in (d / "curve.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    assert tiny_train.main([str(d), *STEPS]) == 0
    return d


def preempt_then_resume(d, at: str, extra: tuple[str, ...] = ()) -> None:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)}
    with pytest.raises(SystemExit) as e:
        tiny_train.main([str(d), *STEPS, "--signal-at", at, *extra])
    assert e.value.code == EXIT_PREEMPTED
    step = int(at.split(":")[0])
    assert [r["step"] for r in curve(d)] == list(range(1, step + 1))  # curve saved with the checkpoint
    assert not (d / "final.json").exists()
    # no handler leaks out of a preempted fit
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert tiny_train.main([str(d), *STEPS, *extra]) == 0
    assert final(d)["resumed_from"] == str(d / "ckpt" / "last.ckpt")


@pytest.mark.parametrize("at", ["17:USR1", "12:USR2", "23:TERM"])  # mid-epoch, epoch end, another epoch
def test_signal_checkpoints_and_resume_is_bitwise_equal(tmp_path, reference, at):
    preempt_then_resume(tmp_path, at)
    assert final(tmp_path)["weights_sha256"] == final(reference)["weights_sha256"]
    assert final(tmp_path)["eval_loss"] == final(reference)["eval_loss"]
    assert curve(tmp_path) == curve(reference)


def test_plain_dataloader_does_not_resume_exactly(tmp_path, tmp_path_factory):
    """Negative control: the same preemption with DataLoader(shuffle=True) ends elsewhere."""
    ref = tmp_path_factory.mktemp("plain_reference")
    assert tiny_train.main([str(ref), *STEPS, "--plain-loader"]) == 0
    preempt_then_resume(tmp_path, "17:USR1", ("--plain-loader",))
    assert final(tmp_path)["weights_sha256"] != final(ref)["weights_sha256"]


def test_unsignalled_run_never_stops(tmp_path, reference):
    assert final(reference)["step"] == 30 and final(reference)["resumed_from"] is None


def test_exit_code_seen_from_outside(tmp_path):
    """As a separate process (how a job runs): exit status 75 and a checkpoint on disk."""
    script = os.path.join(os.path.dirname(__file__), "tiny_train.py")
    r = subprocess.run([sys.executable, script, str(tmp_path), "--steps", "12", "--signal-at", "5:USR1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == EXIT_PREEMPTED, r.stderr[-2000:]
    assert "preemption: SIGUSR1 at step 5" in r.stderr
    assert (tmp_path / "ckpt" / "last.ckpt").exists()


def test_submitit_handler_is_recognised(tmp_path, monkeypatch):
    from submitit.core.job_environment import JobEnvironment, SignalHandler
    from submitit.core.utils import DelayedSubmission, JobPaths

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    env = JobEnvironment()
    handler = SignalHandler(env, JobPaths(tmp_path, job_id="1"), DelayedSubmission(print))
    found = _submitit_handler({signal.SIGUSR2: handler.checkpoint_and_try_requeue, signal.SIGUSR1: signal.SIG_DFL})
    assert found == handler.checkpoint_and_try_requeue
    assert _submitit_handler({signal.SIGUSR2: handler.bypass, signal.SIGUSR1: print}) is None


def test_slurm_job_id(monkeypatch):
    for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(k, raising=False)
    assert slurm_job_id() is None
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert slurm_job_id() == "42"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert slurm_job_id() == "40_2"  # what `scontrol requeue` needs for an array task


def test_handler_outside_training_acts_like_the_previous_one():
    """After fit, a handler Lightning put back must not swallow signals (e.g. submitit's USR2)."""
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: seen.append(s))
    try:
        cb = PreemptionCheckpoint()
        cb.on_train_start(None, None)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGUSR2) == cb._handler
        cb.teardown(None, None, "fit")  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGUSR2) is not cb._handler  # restored
        signal.signal(signal.SIGUSR2, cb._handler)  # as if someone re-installed ours after teardown
        os.kill(os.getpid(), signal.SIGUSR2)
        assert seen == [signal.SIGUSR2] and cb.received is None
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_sigterm_does_not_trip_lightnings_own_exit_but_reaches_user_handlers():
    """Lightning's SIGTERM notifier would make its loops raise SIGTERMException (exit status 0) at the
    next check, racing the checkpoint; the callback keeps it out and still calls a user's handler."""
    import lightning as L

    seen = []
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))  # the user's own handler
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer._signal_connector.register_signal_handlers()  # what fit() does: compose notifier + user handler
    cb = PreemptionCheckpoint()
    try:
        cb.on_train_start(trainer, None)
        os.kill(os.getpid(), signal.SIGTERM)
        assert cb.received == signal.SIGTERM and seen == [signal.SIGTERM]
        assert trainer.received_sigterm is False
    finally:
        cb._restore()
        trainer._signal_connector.teardown()
        signal.signal(signal.SIGTERM, before)


# `scontrol requeue` as Slurm runs it inside a job: the requeue goes through, and Slurm's SIGTERM to every process
# of the job step reaches scontrol itself before it has exited (the race that failed a CI run).
SCONTROL_HIT_BY_THE_REQUEUE = """#!/bin/bash
echo "$@" >> "{calls}"
kill -TERM $$
exit 0
"""


@pytest.fixture
def scontrol_hit_by_the_requeue(tmp_path, monkeypatch):
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol_calls"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(SCONTROL_HIT_BY_THE_REQUEUE.format(calls=calls))
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_the_fake_scontrol_dies_of_sigterm_unless_it_is_ignored(scontrol_hit_by_the_requeue):
    """The fixture's premise: the bare call is killed (the old behaviour), the protected one exits 0."""
    assert subprocess.run(["scontrol", "requeue", "7"]).returncode == -signal.SIGTERM
    with sigterm_ignored_by_children():
        assert subprocess.run(["scontrol", "requeue", "7"]).returncode == 0


def test_submitits_requeue_outlives_the_sigterm_slurm_sends_with_it(scontrol_hit_by_the_requeue, tmp_path,
                                                                    monkeypatch):
    """Through submitit's real SignalHandler: requeued, then its own exit (-1), never CalledProcessError."""
    from submitit.core.job_environment import JobEnvironment, SignalHandler
    from submitit.core.utils import DelayedSubmission, JobPaths

    for k, v in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                 "SLURM_NODEID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "vm"}.items():
        monkeypatch.setenv(k, v)
    delayed = DelayedSubmission(print)
    delayed._timeout_min = 60  # as the executor sets it: a job 1 s into its hour was preempted, not timed out
    handler = SignalHandler(JobEnvironment(), JobPaths(tmp_path, job_id="7"), delayed)
    cb = PreemptionCheckpoint()
    cb._previous = {signal.SIGUSR1: handler.checkpoint_and_try_requeue}
    sigterm = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e:
        cb._leave(signal.SIGUSR1, is_global_zero=True)
    assert e.value.code == -1  # submitit's "Exiting gracefully after preemption/timeout."
    assert scontrol_hit_by_the_requeue.read_text().split() == ["requeue", "7"]
    assert signal.getsignal(signal.SIGTERM) == sigterm  # put back


def test_plain_slurm_requeue_outlives_the_sigterm_slurm_sends_with_it(scontrol_hit_by_the_requeue):
    sigterm = signal.getsignal(signal.SIGTERM)
    assert requeue_slurm_job("7") is True
    assert signal.getsignal(signal.SIGTERM) == sigterm
