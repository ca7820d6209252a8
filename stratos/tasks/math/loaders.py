"""Load math data from any fsspec URL or from the Hugging Face hub, then cut train/val/test.

Sources (`task.source`):
  a file   .jsonl / .json (a list, or {"data": [...]}) / .csv / .parquet, optionally .gz/.bz2/.xz
           -> one pool that is cut into test, val and train;
  a folder holding train.* / test.* / val.* (or validation.*, dev.*) files (GSM8K ships
           train.jsonl + test.jsonl) -> test rows come from the test file only.
`task.hf_dataset` (+ `task.hf_config`, e.g. openai/gsm8k + main) loads every split with
`datasets.load_dataset(name, config, split=...)`. Without the `datasets` package, or offline
without a cached copy, that is a UserError — never a silent switch to synthetic data.

Every malformed record is a UserError naming the file and line (or the HF split and row).

Cutting (`split_pools`) is deterministic by seed: test first, then val, then train, each drawn
with its own `random.Random(f"{seed}-{split}")`, skipping ids already taken — so splits are
disjoint, and changing n_train never changes the test set. Too few rows is a UserError that
says how many there are.
"""

from __future__ import annotations

import csv
import io
import json
import random
from typing import Callable

import fsspec

from stratos.errors import UserError

Parser = Callable[[dict, str], dict]
_EXTS = (".jsonl", ".json", ".csv", ".parquet")
_SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "validation": "val", "dev": "val", "valid": "val"}


def _ext(url: str) -> str:
    low = url.lower()
    for comp in (".gz", ".bz2", ".xz", ".zst"):
        if low.endswith(comp):
            low = low[: -len(comp)]
    return next((e for e in _EXTS if low.endswith(e)), "")


def read_records(url: str) -> list[tuple[str, dict]]:
    """[(where, record)] from one file; `where` is 'url:line' (or 'url[item]' for a JSON array)."""
    ext = _ext(url)
    if not ext:
        raise UserError(f"task.source: {url!r} has an unknown extension (allowed: {', '.join(_EXTS)}, "
                        "optionally compressed .gz/.bz2/.xz)")
    try:
        if ext == ".parquet":
            return _read_parquet(url)
        with fsspec.open(url, "rt", compression="infer", encoding="utf-8") as f:
            if ext == ".jsonl":
                return _read_jsonl(url, f)
            if ext == ".csv":
                reader = csv.DictReader(f)
                return [(f"{url}:{reader.line_num}", dict(r)) for r in reader]
            return _read_json(url, f)
    except FileNotFoundError as e:
        raise UserError(f"task.source: {url!r} does not exist") from e
    except UnicodeDecodeError as e:
        raise UserError(f"task.source: {url!r} is not UTF-8 text ({e.reason} at byte {e.start})") from e


def _read_jsonl(url: str, f: io.TextIOBase) -> list[tuple[str, dict]]:
    out = []
    for i, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{url}:{i}: not valid JSON ({e.msg} at column {e.colno})") from e
        out.append((f"{url}:{i}", rec))
    return out


def _read_json(url: str, f: io.TextIOBase) -> list[tuple[str, dict]]:
    try:
        data = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{url}:{e.lineno}: not valid JSON ({e.msg})") from e
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise UserError(f"{url}: a .json source must hold a list of records (or {{\"data\": [...]}})")
    return [(f"{url}[{i}]", rec) for i, rec in enumerate(data)]


def _read_parquet(url: str) -> list[tuple[str, dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise UserError(f"task.source: reading {url!r} needs pyarrow (pip install pyarrow), "
                        "or convert it to .jsonl") from e
    with fsspec.open(url, "rb") as f:
        rows = pq.read_table(f).to_pylist()
    return [(f"{url}[row {i}]", r) for i, r in enumerate(rows)]


def load_source(url: str, parse: Parser) -> dict[str, list[dict]]:
    """Pools of parsed rows from a file ({"all": rows}) or a folder of split files ({"train": ..., "test": ...})."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise UserError(f"task.source: {url!r} does not exist")
    if not fs.isdir(path):
        return {"all": [parse(rec, where) for where, rec in read_records(url)]}
    pools: dict[str, list[dict]] = {}
    prefix = url.rstrip("/")
    for entry in sorted(fs.ls(path, detail=False)):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        stem = name.split(".", 1)[0].lower()
        if stem in _SPLIT_NAMES and _ext(name):
            split = _SPLIT_NAMES[stem]
            if split in pools:
                raise UserError(f"task.source: {url!r} holds two files for split {split!r}; keep one")
            pools[split] = [parse(rec, where) for where, rec in read_records(f"{prefix}/{name}")]
    if not pools:
        raise UserError(f"task.source: folder {url!r} has no train/test/val files "
                        f"(expected e.g. train.jsonl, test.jsonl; extensions {', '.join(_EXTS)})")
    return pools


def load_hf(name: str, config: str | None, parse: Parser) -> dict[str, list[dict]]:
    """Pools of parsed rows from every split of a Hugging Face dataset (needs `datasets`)."""
    key = f"task.hf_dataset={name!r}"
    try:
        import datasets
    except ImportError as e:
        raise UserError(f"{key} needs the `datasets` package (pip install datasets), or set task.source "
                        "to a local file") from e
    pools: dict[str, list[dict]] = {}
    try:
        splits = datasets.get_dataset_split_names(name, config)
        for sp in splits:
            ds = datasets.load_dataset(name, config, split=sp)
            rows = [parse(dict(rec), f"{name}[{sp}] row {i}") for i, rec in enumerate(ds)]
            pools.setdefault(_SPLIT_NAMES.get(sp.lower(), "all"), []).extend(rows)
    except UserError:
        raise
    except Exception as e:  # network down, unknown name, missing config: one clear line
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise UserError(f"{key} (config {config!r}) could not be loaded: {type(e).__name__}: {msg} "
                        "(offline? use a cached copy with HF_DATASETS_OFFLINE=1, or task.source)") from e
    return pools


def _dedup(rows: list[dict]) -> list[dict]:
    seen: set[str] = set()
    out = []
    for r in rows:
        if r["id"] not in seen:
            seen.add(r["id"])
            out.append(r)
    return out


def split_pools(pools: dict[str, list[dict]], sizes: dict[str, int], seed: int, origin: str) -> dict[str, list[dict]]:
    """Disjoint {"train", "val", "test"} of the requested sizes (see the module docstring)."""
    if len(pools) == 1:  # a single file (or a single HF split) feeds every split
        pools = {"all": next(iter(pools.values()))}
    shared = pools.get("train", []) + pools.get("all", [])
    taken: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split in ("test", "val", "train"):
        pool = pools[split] if split in pools and split != "train" else shared
        cand = [r for r in _dedup(pool) if r["id"] not in taken]
        n = int(sizes[split])
        if len(cand) < n:
            raise UserError(f"task.n_{split}={n} but {origin} has only {len(cand)} unused {split} rows "
                            f"(lower task.n_{split})")
        chosen = random.Random(f"{seed}-{split}").sample(cand, n)
        taken.update(r["id"] for r in chosen)
        out[split] = chosen
    return out
