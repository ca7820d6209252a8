"""A content-addressed cache that many jobs share on one fsspec path, computing each entry once.

Sweep jobs (Slurm array tasks, local processes) that need the same data split or the same
teacher logits read them from `cfg.paths.cache` instead of recomputing them:

    cache = SharedCache(cfg.paths.cache, "teacher_logits")
    blob = cache.get_or_compute({"teacher": cfg.teacher.name, "rows": ids}, lambda: encode(run_teacher()))

Guarantees, and how:
  * never corrupt: an entry is written to a unique temp name and renamed into place
    (`artifacts.atomic_open`), so a reader sees the whole value or nothing, even when the writer
    is killed mid-write;
  * never duplicated: the first job creates `<entry>.lock` with exclusive create (mode "xb":
    O_EXCL on local/NFS disks, conditional put on object stores that support it); the others
    wait for the entry. The holder refreshes the lock's mtime every `lease_s / 4`; a lock older
    than `lease_s` belongs to a dead job (kill -9, lost node) and is taken over.
  * Limits: two waiters breaking the same stale lock at the same instant may both compute
    (the values are equal and each write is atomic, so this costs time, never data). On a
    filesystem without exclusive create, jobs compute concurrently and the first rename wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import fsspec

from stratos.artifacts import atomic_open, join

log = logging.getLogger("stratos")


def cache_key(material: Any) -> str:
    """sha256 of `material` (str, bytes, or anything JSON-serialisable, keys sorted)."""
    if isinstance(material, bytes):
        blob = material
    elif isinstance(material, str):
        blob = material.encode()
    else:
        blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


class SharedCache:
    """`root/<namespace>/<k[:2]>/<k>.bin` entries; see the module docstring for the guarantees."""

    def __init__(self, root: str, namespace: str = "default", *, lease_s: float = 60.0, poll_s: float = 0.1,
                 timeout_s: float | None = None) -> None:
        self.base = join(root, namespace)
        self.fs, _ = fsspec.core.url_to_fs(self.base)
        self.lease_s, self.poll_s, self.timeout_s = lease_s, poll_s, timeout_s
        self.computed = 0  # entries this instance computed (for tests and logs)

    def url(self, key: str) -> str:
        return join(self.base, key[:2], f"{key}.bin")

    def _path(self, url: str) -> str:
        return fsspec.core.url_to_fs(url)[1]

    def get(self, material: Any) -> bytes | None:
        """The cached value, or None."""
        path = self._path(self.url(cache_key(material)))
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def get_or_compute(self, material: Any, compute: Callable[[], bytes]) -> bytes:
        """The cached value for `material`; computed by exactly one job when missing."""
        key = cache_key(material)
        url = self.url(key)
        path, lock = self._path(url), self._path(url) + ".lock"
        start = time.monotonic()
        while True:
            if (value := self._read(path)) is not None:
                return value
            with self._try_lock(lock) as owned:
                if owned:
                    if (value := self._read(path)) is not None:  # finished while we took the lock
                        return value
                    value = compute()
                    if not isinstance(value, (bytes, bytearray)):
                        raise TypeError(f"SharedCache compute() must return bytes, got {type(value).__name__}")
                    with atomic_open(url, "wb") as f:
                        f.write(value)
                    self.computed += 1
                    return bytes(value)
            if self.timeout_s is not None and time.monotonic() - start > self.timeout_s:
                raise TimeoutError(f"waited {self.timeout_s:.0f} s for cache entry {url} (held by {lock})")
            time.sleep(self.poll_s)

    # json convenience: most cached things are small records
    def get_or_compute_json(self, material: Any, compute: Callable[[], Any]) -> Any:
        blob = self.get_or_compute(material, lambda: json.dumps(compute(), sort_keys=True).encode())
        return json.loads(blob)

    def _read(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _try_lock(self, lock: str) -> Iterator[bool]:
        """Yields True when this job now holds `lock` (released on exit), False when another does."""
        self._break_if_stale(lock)
        self.fs.makedirs(lock.rsplit("/", 1)[0], exist_ok=True)
        owner = f"{socket.gethostname()} pid={os.getpid()} {uuid.uuid4().hex[:8]}"
        try:
            with self.fs.open(lock, "xb") as f:
                f.write(owner.encode())
        except FileExistsError:
            yield False
            return
        except (ValueError, NotImplementedError):  # no exclusive create here: compute unlocked
            yield True
            return
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(lock, stop), daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            beat.join()
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(lock)

    def _heartbeat(self, lock: str, stop: threading.Event) -> None:
        owner = self.fs.cat_file(lock)
        while not stop.wait(self.lease_s / 4):
            with contextlib.suppress(Exception):
                try:
                    self.fs.touch(lock, truncate=False)  # mtime only
                except NotImplementedError:  # filesystems that cannot touch: rewrite our own lock
                    self.fs.pipe_file(lock, owner)

    def _break_if_stale(self, lock: str) -> None:
        try:
            age = time.time() - self._mtime(lock)
        except FileNotFoundError:
            return
        if age > self.lease_s:
            # Rename, not rm: of two jobs breaking it at once, only one rename succeeds.
            aside = f"{lock}.stale-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(FileNotFoundError):
                self.fs.mv(lock, aside)
                self.fs.rm_file(aside)
                log.warning("cache: took over %s (holder silent for %.0f s: presumed dead)", lock, age)

    def _mtime(self, path: str) -> float:
        try:
            m = self.fs.modified(path)
        except NotImplementedError:
            info = self.fs.info(path)
            m = info.get("mtime") or info.get("LastModified") or info.get("created")
        if m is None:
            return time.time()
        return m.timestamp() if hasattr(m, "timestamp") else float(m)
