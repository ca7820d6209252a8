"""latest_checkpoint: newest complete checkpoint wins; cut or garbled files are set aside."""

from __future__ import annotations

import os
import time

import torch

from stratos.resilience.checkpoints import checkpoint_ok, latest_checkpoint


def save(path: str, step: int, mtime: float) -> None:
    torch.save({"global_step": step, "w": torch.arange(1000, dtype=torch.float32)}, path)
    os.utime(path, (mtime, mtime))


def test_empty_or_missing_dir(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
    assert latest_checkpoint(str(tmp_path / "nope")) is None


def test_newest_complete_checkpoint_wins(tmp_path):
    now = time.time()
    save(str(tmp_path / "step_000010.ckpt"), 10, now - 20)
    save(str(tmp_path / "last.ckpt"), 20, now)
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "last.ckpt")


def test_truncated_checkpoint_is_set_aside(tmp_path):
    now = time.time()
    good, cut = str(tmp_path / "step_000010.ckpt"), str(tmp_path / "last.ckpt")
    save(good, 10, now - 20)
    save(cut, 20, now)
    with open(cut, "rb") as f:
        blob = f.read()
    with open(cut, "wb") as f:  # what a kill -9 in the middle of a non-atomic copy leaves
        f.write(blob[: len(blob) // 2])
    os.utime(cut, (now, now))
    assert not checkpoint_ok(cut) and checkpoint_ok(good)
    assert latest_checkpoint(str(tmp_path)) == good
    assert os.path.exists(cut + ".corrupt") and not os.path.exists(cut)  # kept for a post-mortem


def test_bit_flip_is_detected(tmp_path):
    path = str(tmp_path / "last.ckpt")
    save(path, 1, time.time())
    blob = bytearray(open(path, "rb").read())
    i = blob.find(b"\x00\x00\x80\x3f")  # 1.0f inside the tensor data
    assert i > 0
    blob[i + 3] ^= 0x01
    open(path, "wb").write(bytes(blob))
    assert not checkpoint_ok(path)
    assert latest_checkpoint(str(tmp_path)) is None


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "last.ckpt"
    p.write_text("hello")
    assert not checkpoint_ok(str(p))


def test_sharded_checkpoint_directories(tmp_path):
    """FSDP-sharded (torch.distributed.checkpoint) and DeepSpeed checkpoints are directories."""
    import warnings

    import torch.distributed.checkpoint as dcp

    now = time.time()
    save(str(tmp_path / "step_000010.ckpt"), 10, now - 30)
    sharded = tmp_path / "step_000020.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.distributed is disabled ... single process"
        dcp.save({"model": {"w": torch.arange(10.0)}}, checkpoint_id=str(sharded))
    os.utime(sharded, (now - 20, now - 20))
    assert checkpoint_ok(str(sharded)) and latest_checkpoint(str(tmp_path)) == str(sharded)
    cut = tmp_path / "step_000030.ckpt"  # killed while shards were written: no .metadata yet
    cut.mkdir()
    (cut / "__0_0.distcp").write_bytes(b"\0" * 100)
    os.utime(cut, (now, now))
    assert not checkpoint_ok(str(cut))
    assert latest_checkpoint(str(tmp_path)) == str(sharded) and (tmp_path / "step_000030.ckpt.corrupt").is_dir()
    deepspeed = tmp_path / "last.ckpt"
    (deepspeed / "checkpoint").mkdir(parents=True)
    (deepspeed / "latest").write_text("checkpoint")
    os.utime(deepspeed, (now + 5, now + 5))
    assert latest_checkpoint(str(tmp_path)) == str(deepspeed)
