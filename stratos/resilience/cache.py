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
        url = self.url(cache_key(material))
        path = self._path(url)
        found: list[bytes] = []

        def done() -> bool:
            value = self._read(path)
            if value is not None:
                found.append(value)
            return value is not None

        def build() -> None:
            value = compute()
            if not isinstance(value, (bytes, bytearray)):
                raise TypeError(f"SharedCache compute() must return bytes, got {type(value).__name__}")
            with atomic_open(url, "wb") as f:
                f.write(value)
            self.computed += 1
            found.append(bytes(value))

        compute_once(url + ".lock", done, build, lease_s=self.lease_s, poll_s=self.poll_s, timeout_s=self.timeout_s)
        return found[-1]

    # json convenience: most cached things are small records
    def get_or_compute_json(self, material: Any, compute: Callable[[], Any]) -> Any:
        blob = self.get_or_compute(material, lambda: json.dumps(compute(), sort_keys=True).encode())
        return json.loads(blob)

    def _read(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def _break_if_stale(self, lock: str) -> None:  # kept for tests: the module function on this fs
        _break_if_stale(self.fs, lock, self.lease_s)


# ---------------------------------------------------------------- the lock, usable on its own
def compute_once(lock_url: str, is_done: Callable[[], bool], compute: Callable[[], Any], *, lease_s: float = 60.0,
                 poll_s: float = 0.1, timeout_s: float | None = None) -> bool:
    """Run `compute()` in exactly one of the jobs that call this at once, unless `is_done()`.

    Returns True in the job that computed, False in the others (which return once `is_done()`).
    `compute` must publish atomically (what makes `is_done()` true), e.g. a marker file written
    last through a rename. Any other artifact store gets dedup with three lines:

        compute_once(store.url + ".lock", store.exists, lambda: store.write(batches, vocab))
    """
    fs, lock = fsspec.core.url_to_fs(lock_url)
    start = time.monotonic()
    while True:
        if is_done():
            return False
        with _try_lock(fs, lock, lease_s) as owned:
            if owned:
                if is_done():  # finished while we took the lock
                    return False
                compute()
                return True
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"waited {timeout_s:.0f} s for the holder of {lock_url}")
        time.sleep(poll_s)


@contextlib.contextmanager
def _try_lock(fs: fsspec.AbstractFileSystem, lock: str, lease_s: float) -> Iterator[bool]:
    """Yields True when this job now holds `lock` (released on exit), False when another does."""
    _break_if_stale(fs, lock, lease_s)
    fs.makedirs(lock.rsplit("/", 1)[0], exist_ok=True)
    owner = f"{socket.gethostname()} pid={os.getpid()} {uuid.uuid4().hex[:8]}".encode()
    try:
        with fs.open(lock, "xb") as f:
            f.write(owner)
    except FileExistsError:
        yield False
        return
    except (ValueError, NotImplementedError):  # no exclusive create here: compute unlocked
        yield True
        return
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(fs, lock, owner, lease_s, stop), daemon=True)
    beat.start()
    try:
        yield True
    finally:
        stop.set()
        beat.join()
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(lock)


def _heartbeat(fs: fsspec.AbstractFileSystem, lock: str, owner: bytes, lease_s: float, stop: threading.Event) -> None:
    while not stop.wait(lease_s / 4):
        with contextlib.suppress(Exception):
            try:
                fs.touch(lock, truncate=False)  # mtime only
            except NotImplementedError:  # filesystems that cannot touch: rewrite our own lock
                fs.pipe_file(lock, owner)


def _break_if_stale(fs: fsspec.AbstractFileSystem, lock: str, lease_s: float) -> None:
    try:
        age = time.time() - _mtime(fs, lock)
    except FileNotFoundError:
        return
    if age > lease_s:
        # Rename, not rm: of two jobs breaking it at once, only one rename succeeds.
        aside = f"{lock}.stale-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            fs.mv(lock, aside)
            fs.rm_file(aside)
            log.warning("cache: took over %s (holder silent for %.0f s: presumed dead)", lock, age)


def _mtime(fs: fsspec.AbstractFileSystem, path: str) -> float:
    try:
        m = fs.modified(path)
    except NotImplementedError:
        info = fs.info(path)
        m = info.get("mtime") or info.get("LastModified") or info.get("created")
    if m is None:
        return time.time()
    return m.timestamp() if hasattr(m, "timestamp") else float(m)
