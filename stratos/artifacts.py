"""Typed, versioned stage artifacts on any fsspec filesystem.

Every stage writes into `<run_dir>/<stage>/` and, *last*, `manifest.json`. A stage with a
manifest whose `config_hash` matches the current config is done and is skipped on re-runs;
a stage without one (crashed, killed) is redone from a clean directory. Files are written to a
temporary name and renamed, so a reader never sees half a file.

    ctx = StageContext(run_dir="outputs/exp/run", stage="data", config_hash="ab12…", inputs={...})
    ctx.write_jsonl("train.jsonl", rows)
    return ctx.manifest(metrics={"data/train/n": len(rows)})
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator

import fsspec
from omegaconf import DictConfig, OmegaConf

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def config_hash(*parts: Any) -> str:
    """Stable short hash of config fragments (DictConfigs are resolved first)."""
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    blob = json.dumps(plain, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def join(base: str, *names: str) -> str:
    """Join path parts with '/' (fsspec URLs use '/', also on local disk)."""
    return "/".join([base.rstrip("/"), *[n.strip("/") for n in names]])


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


@contextlib.contextmanager
def atomic_open(url: str, mode: str = "w") -> Iterator[Any]:
    """Open `url` for writing through a temporary sibling that is renamed into place on success."""
    assert mode in ("w", "wb"), mode
    fs, path = _fs(url)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, mode) as f:
            yield f
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def write_json(url: str, obj: Any) -> str:
    with atomic_open(url) as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    return url


def write_text(url: str, text: str) -> str:
    with atomic_open(url) as f:
        f.write(text)
    return url


def read_json(url: str) -> Any:
    with fsspec.open(url, "r") as f:
        return json.load(f)


def write_jsonl(url: str, rows: Iterable[dict]) -> str:
    with atomic_open(url) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return url


def read_jsonl(url: str) -> list[dict]:
    with fsspec.open(url, "r", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def exists(url: str) -> bool:
    fs, path = _fs(url)
    return fs.exists(path)


def local_path(url: str) -> str:
    """The local filesystem path behind `url`; raises if `url` is on a remote filesystem.

    Libraries that only take local paths (transformers' save_pretrained, torch.onnx, Lightning
    checkpoints) go through this, so the limitation is explicit rather than silent.
    """
    fs, path = _fs(url)
    if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        raise ValueError(f"{url!r} is not on the local filesystem")
    return path


@dataclass
class Manifest:
    """What a finished stage produced. Written last, so its presence means 'done'."""

    stage: str
    config_hash: str
    inputs: dict[str, str] = field(default_factory=dict)  # upstream stage -> its config_hash
    outputs: dict[str, str] = field(default_factory=dict)  # artifact name -> URL
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    finished_at: str = ""
    manifest_version: int = MANIFEST_VERSION

    def path(self, name: str) -> str:
        """URL of one of this stage's outputs."""
        if name not in self.outputs:
            raise KeyError(f"stage '{self.stage}' has no output '{name}' (has: {sorted(self.outputs)})")
        return self.outputs[name]

    @classmethod
    def load(cls, url: str) -> "Manifest":
        return cls(**read_json(url))


@dataclass
class StageContext:
    """Where a stage reads its inputs and writes its outputs. Passed to `run(cfg, ctx)`."""

    run_dir: str
    stage: str
    config_hash: str
    inputs: dict[str, Manifest] = field(default_factory=dict)
    _outputs: dict[str, str] = field(default_factory=dict)
    _started: float = field(default_factory=time.time)

    @property
    def out_dir(self) -> str:
        return join(self.run_dir, self.stage)

    def path(self, name: str) -> str:
        """URL for an output file `name` in this stage's directory (recorded as an output)."""
        url = join(self.out_dir, name)
        self._outputs[name] = url
        return url

    def local_dir(self, name: str) -> str:
        """A local directory output (checkpoints, HF model folders); created, recorded."""
        path = local_path(self.path(name))
        os.makedirs(path, exist_ok=True)
        return path

    def input(self, stage: str) -> Manifest:
        if stage not in self.inputs:
            raise KeyError(f"stage '{self.stage}' needs stage '{stage}' to have run first")
        return self.inputs[stage]

    def write_json(self, name: str, obj: Any) -> str:
        return write_json(self.path(name), obj)

    def write_jsonl(self, name: str, rows: Iterable[dict]) -> str:
        return write_jsonl(self.path(name), rows)

    def write_text(self, name: str, text: str) -> str:
        return write_text(self.path(name), text)

    def manifest(self, metrics: dict[str, Any] | None = None) -> Manifest:
        return Manifest(
            stage=self.stage,
            config_hash=self.config_hash,
            inputs={k: m.config_hash for k, m in self.inputs.items()},
            outputs=dict(self._outputs),
            metrics=dict(metrics or {}),
            versions=library_versions(),
            seconds=round(time.time() - self._started, 3),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("stratos", "torch", "transformers", "lightning", "peft", "onnxruntime", "mahjong", "pymoo"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def asdict_manifest(m: Manifest) -> dict:
    return asdict(m)


def check_writable(key: str, url: str) -> None:
    """UserError (one line) when `url` (a directory, any fsspec URL) cannot be written, found before any
    work: a local path whose nearest existing ancestor is a file or not writable, or a URL whose
    filesystem is unknown or not installed (s3:// without s3fs, say). Writes nothing."""
    import os

    from stratos.errors import UserError, bad_value

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise UserError(f"invalid value for '{key}': {url!r} ({str(e).splitlines()[0]}; allowed: a local "
                        f"directory or an fsspec URL whose filesystem is installed)") from None
    if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return  # remote stores: credentials and permissions are the store's, checked at first write
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise bad_value(key, url, f"a directory (the path runs through the file {probe})")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise bad_value(key, url, f"a writable directory ({probe} is not writable by this user)")
