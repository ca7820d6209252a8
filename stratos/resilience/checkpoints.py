"""Pick the checkpoint a re-run resumes from: the newest one that is complete.

Lightning writes checkpoints through an fsspec transaction (temp file, then move), which is a
rename on one filesystem but a copy when the temp dir is elsewhere, and any file can be cut by a
full disk. A checkpoint file is a zip archive (`torch.save`), so completeness is checked without
unpickling anything: the central directory must parse and every member's CRC must match.
Sharded checkpoints (FSDP `state_dict_type="sharded"`, DeepSpeed) are *directories* named
`*.ckpt` whose last write is a marker: torch.distributed.checkpoint's `.metadata` (written by
the coordinator after every shard) or DeepSpeed's `latest` tag; a directory without one is
incomplete. Broken ones are renamed aside (`*.corrupt`), never deleted, and the next newest is used.

    ckpt = latest_checkpoint(ckpt_dir)          # None when there is nothing to resume
    trainer.fit(module, loader, ckpt_path=ckpt)
"""

from __future__ import annotations

import logging
import os
import re
import zipfile

log = logging.getLogger("stratos")

_STEP = re.compile(r"step_(\d+)")


SHARDED_MARKERS = (".metadata", "latest")  # torch.distributed.checkpoint, DeepSpeed


def checkpoint_ok(path: str) -> bool:
    """True when `path` is a complete torch zip archive (every member's CRC checked), or a
    sharded checkpoint directory holding its completion marker."""
    if os.path.isdir(path):
        return any(os.path.isfile(os.path.join(path, m)) for m in SHARDED_MARKERS)
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None and any(n.endswith("data.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def _candidates(ckpt_dir: str) -> list[str]:
    """`*.ckpt` files and sharded directories, newest first: by modification time, then by step."""
    try:
        names = [n for n in os.listdir(ckpt_dir) if n.endswith(".ckpt")]
    except FileNotFoundError:
        return []
    paths = [os.path.join(ckpt_dir, n) for n in names]

    def key(p: str) -> tuple[float, int]:
        m = _STEP.search(os.path.basename(p))
        return (os.path.getmtime(p), int(m.group(1)) if m else -1)

    return sorted(paths, key=key, reverse=True)


def latest_checkpoint(ckpt_dir: str) -> str | None:
    """The newest complete checkpoint in `ckpt_dir`; broken ones are renamed `*.corrupt`."""
    for path in _candidates(ckpt_dir):
        if checkpoint_ok(path):
            return path
        aside = f"{path}.corrupt"
        log.warning("checkpoint %s is incomplete or corrupt: moved to %s, trying an older one", path, aside)
        os.replace(path, aside)
    return None
