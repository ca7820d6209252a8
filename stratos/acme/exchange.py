"""The only channel between tiers: fsspec storage with per-node inboxes and a byte ledger.

Layout under `root` (any fsspec URL: local dir, memory://, s3://...):
    <tier>/<node>/inbox/<name>      what other nodes sent to this node
    <tier>/<node>/private/...       a node's own data (device datasets); never crosses a boundary
    <tier>/<node>/out/...           a node's own results
    ledger/<uuid>.json              one record per transfer: src, dst, name, kind, bytes, scenario

Every `send` copies bytes into the receiver's inbox and records them, so the ledger is the
complete account of what crossed a tier boundary (cloud<->edge<->device). Records are separate
files written atomically, so concurrent jobs never contend for one file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections import defaultdict
from typing import Iterator

import fsspec

from stratos import artifacts

TIERS = ("cloud", "edge", "device")


def node_dir(root: str, node: str) -> str:
    """'edge:phone' -> <root>/edge/phone."""
    tier, _, name = node.partition(":")
    if tier not in TIERS:
        raise ValueError(f"unknown tier in node {node!r}")
    return artifacts.join(root, tier, name or "main")


def inbox(root: str, node: str, name: str = "") -> str:
    return artifacts.join(node_dir(root, node), "inbox", name) if name else artifacts.join(node_dir(root, node), "inbox")


def _files(local_dir: str) -> list[tuple[str, str]]:
    """(absolute path, relative name) of every file under `local_dir`."""
    out = []
    for r, _, fs in os.walk(local_dir):
        for f in fs:
            full = os.path.join(r, f)
            out.append((full, os.path.relpath(full, local_dir).replace(os.sep, "/")))
    return sorted(out, key=lambda x: x[1])


class Exchange:
    def __init__(self, root: str, scenario: str = "acme"):
        self.root = root.rstrip("/")
        self.scenario = scenario

    def _record(self, src: str, dst: str, name: str, kind: str, n_bytes: int) -> None:
        rec = {"scenario": self.scenario, "src": src, "dst": dst, "boundary": f"{src.split(':')[0]}->"
               f"{dst.split(':')[0]}", "name": name, "kind": kind, "bytes": int(n_bytes)}
        artifacts.write_json(artifacts.join(self.root, "ledger", f"{uuid.uuid4().hex}.json"), rec)

    def send_bytes(self, src: str, dst: str, name: str, data: bytes, kind: str) -> str:
        url = inbox(self.root, dst, name)
        with artifacts.atomic_open(url, "wb") as f:
            f.write(data)
        self._record(src, dst, name, kind, len(data))
        return url

    def send_json(self, src: str, dst: str, name: str, obj, kind: str) -> str:
        return self.send_bytes(src, dst, name, json.dumps(obj, sort_keys=True).encode(), kind)

    def send_dir(self, src: str, dst: str, name: str, local_dir: str, kind: str) -> str:
        """Copy a local folder (an HF model) into dst's inbox as `name/`; one ledger record with the total."""
        total = 0
        for full, rel in _files(local_dir):
            with open(full, "rb") as f:
                data = f.read()
            with artifacts.atomic_open(inbox(self.root, dst, f"{name}/{rel}"), "wb") as g:
                g.write(data)
            total += len(data)
        self._record(src, dst, name, kind, total)
        return inbox(self.root, dst, name)

    def forward(self, via: str, dst: str, name: str, kind: str) -> str:
        """Relay something `via` received to `dst` (counted again: it crosses another boundary)."""
        src_url = inbox(self.root, via, name)
        fs, path = fsspec.core.url_to_fs(src_url)
        if fs.isdir(path):
            total = 0
            for p in sorted(fs.find(path)):
                rel = p[len(path):].lstrip("/")
                data = fs.cat_file(p)
                with artifacts.atomic_open(inbox(self.root, dst, f"{name}/{rel}"), "wb") as g:
                    g.write(data)
                total += len(data)
            self._record(via, dst, name, kind, total)
            return inbox(self.root, dst, name)
        return self.send_bytes(via, dst, name, fs.cat_file(path), kind)

    def read_bytes(self, node: str, name: str) -> bytes:
        fs, path = fsspec.core.url_to_fs(inbox(self.root, node, name))
        return fs.cat_file(path)

    def read_json(self, node: str, name: str):
        return json.loads(self.read_bytes(node, name))

    @contextlib.contextmanager
    def local_dir(self, node: str, name: str) -> Iterator[str]:
        """`with ex.local_dir(node, name) as path:` a local path of a received folder: the inbox itself when
        storage is local, else a temporary copy that is removed when the block ends (load what you need inside)."""
        url = inbox(self.root, node, name)
        fs, path = fsspec.core.url_to_fs(url)
        if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="acme-") as tmp:
            for p in fs.find(path):
                dest = os.path.join(tmp, p[len(path):].lstrip("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                fs.get_file(p, dest)
            yield tmp


def read_ledger(root: str) -> list[dict]:
    fs, path = fsspec.core.url_to_fs(artifacts.join(root, "ledger"))
    if not fs.exists(path):
        return []
    return [json.loads(fs.cat_file(p)) for p in sorted(fs.find(path)) if p.endswith(".json")]


def totals(records: list[dict]) -> dict:
    """Bytes per scenario, and per scenario x boundary x kind."""
    out: dict = defaultdict(lambda: {"bytes": 0, "by_boundary": defaultdict(int), "by_kind": defaultdict(int)})
    for r in records:
        s = out[r["scenario"]]
        s["bytes"] += r["bytes"]
        s["by_boundary"][r["boundary"]] += r["bytes"]
        s["by_kind"][r["kind"]] += r["bytes"]
    return {k: {"bytes": v["bytes"], "by_boundary": dict(v["by_boundary"]), "by_kind": dict(v["by_kind"])}
            for k, v in out.items()}
