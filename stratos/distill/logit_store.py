r"""Offline teacher top-k log-probabilities: computed once per dataset, shared by every run.

A sweep over students, learning rates or KD weights distils from the same teacher on the same
tokens; the teacher forward is the expensive part, so its top-k log-probs are written once into a
content-addressed store under ``<root>/topk/<digest>/`` (any fsspec URL: local, ``memory://``,
``s3://``...). The digest hashes :class:`StoreKey` (teacher id, dataset hash, k, tokenizer hash,
temperature), so any change to those makes a new store and an unchanged sweep reuses the old one.

Layout (little-endian raw arrays, one row per token, sequences back to back):

    store.json            completion marker + metadata, written LAST and atomically (temp + rename);
                          it names the writer directory that holds the data
    <writer>/ids.bin      (n_tokens, k) int16 if V <= 32768, uint16 if V <= 65536, else int32
    <writer>/logprobs.bin (n_tokens, k) float16, sorted descending
    <writer>/tail.bin     (n_tokens,)   float16, log(1 - sum_k p): the teacher's mass outside the top k
    <writer>/offsets.bin  (n_seq + 1,)  int64, token offset of each sequence

At k = 32 and V < 65,536 that is 64 + 64 + 2 = 130 bytes/token plus 8 bytes per sequence.

Concurrency: each writer streams into its own ``<writer>`` directory (pid + random id), so two
writers never touch the same file; publishing is the single atomic creation of ``store.json``.
A writer that finds ``store.json`` already present discards its own copy. On local disk the
marker is created with link(), which fails if it exists, so exactly one copy survives; on other
filesystems two writers publishing at the same instant both rename, the later one stays, and
both copies are complete and identical. Either way every reader sees one valid store. A crashed
writer leaves only an unreferenced directory and no marker.

Alignment: row t of a sequence is the teacher's distribution at logits position t (the one that
predicts token t + 1), i.e. aligned with ``labels`` in :mod:`stratos.distill.losses`.

    store = TopKStore(cfg.paths.cache, StoreKey("qwen2_7b", dataset_hash(seqs), 32, tokenizer_hash(tok)))
    if not store.exists():
        store.write(((teacher(ids).logits, mask) for ids, mask in batches), vocab_size=V)
    rows = store.open().read_batch([3, 8, 1], length=T)   # TopKRows of (3, T, 32) / (3, T)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence

import fsspec
import numpy as np
import torch

from stratos.artifacts import atomic_open, join
from stratos.errors import bad_value

FORMAT_VERSION = 1
MARKER = "store.json"
_FP16_MIN = float(np.finfo(np.float16).min)  # -65504: lower log-probs are clamped, not -inf


@dataclass(frozen=True)
class StoreKey:
    """What the stored numbers depend on. ``temperature`` is part of it because top-k log-probs
    cannot be re-tempered exactly (the tail's mass at another T is unknown)."""

    teacher_id: str
    dataset_hash: str
    k: int
    tokenizer_hash: str
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if int(self.k) < 1:
            raise bad_value("strategy.alignment.top_k", self.k, "an integer >= 1 for the top-k store")
        if not float(self.temperature) > 0:
            raise bad_value("strategy.alignment.temperature", self.temperature, "> 0")

    def digest(self) -> str:
        blob = json.dumps({**asdict(self), "format": FORMAT_VERSION}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:24]


def dataset_hash(sequences: Iterable[Sequence[int]]) -> str:
    """Hash of the token ids themselves (so a re-tokenisation or reordering makes a new store)."""
    h = hashlib.sha256()
    for seq in sequences:
        arr = np.asarray(seq, dtype=np.int64)
        h.update(np.int64(arr.size).tobytes())
        h.update(arr.tobytes())
    return h.hexdigest()[:24]


def tokenizer_hash(tokenizer) -> str:
    """Hash of a tokenizer's full definition (fast tokenizers) or its vocabulary (others)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        blob = backend.to_str()
    else:
        blob = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class TopKRows:
    """Top-k teacher rows: ids (..., k) int16/int32, logprobs (..., k) float16, tail (...,) float16."""

    ids: torch.Tensor
    logprobs: torch.Tensor
    tail: torch.Tensor

    def as_tuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For ``ChunkedDistillLoss(..., teacher_topk=rows.as_tuple())``."""
        return self.ids, self.logprobs, self.tail


@torch.no_grad()
def topk_logprobs(logits: torch.Tensor, k: int, temperature: float = 1.0) -> TopKRows:
    """Top-k of ``log_softmax(logits / T)`` with the exact log tail mass. (..., V) -> (..., k), (...,).

    Returns fp32 log-probs and int64 ids (the store narrows them when writing). The tail is a
    logsumexp over the other V - k entries, so it stays exact when the top k hold almost all mass;
    with k = V it is -inf.
    """
    if not 1 <= k <= logits.shape[-1]:
        raise bad_value("strategy.alignment.top_k", k, f"1 <= k <= vocab size {logits.shape[-1]}")
    lp = torch.log_softmax(logits.float() / temperature, -1)
    vals, ids = lp.topk(k, dim=-1)  # sorted, descending
    tail = lp.scatter_(-1, ids, -torch.inf).logsumexp(-1)  # lp is ours: overwrite in place
    return TopKRows(ids, vals, tail)


def _id_dtype(vocab_size: int) -> str:
    return "int16" if vocab_size <= 2**15 else "uint16" if vocab_size <= 2**16 else "int32"


class TopKWriter:
    """Streams rows into a private directory; :meth:`close` publishes (see module docstring)."""

    def __init__(self, store: "TopKStore", vocab_size: int):
        self.store, self.vocab_size = store, int(vocab_size)
        self.k = store.key.k
        if self.k > self.vocab_size:
            raise bad_value("strategy.alignment.top_k", self.k, f"<= the vocabulary size {self.vocab_size}")
        self.id_dtype = np.dtype(_id_dtype(self.vocab_size)).newbyteorder("<")
        self.name = f"w-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.dir = join(store.url, self.name)
        self.fs, _ = fsspec.core.url_to_fs(store.url)
        self.fs.makedirs(fsspec.core.url_to_fs(self.dir)[1], exist_ok=True)
        self._files = {n: fsspec.open(join(self.dir, f"{n}.bin"), "wb").open() for n in ("ids", "logprobs", "tail")}
        self.offsets = [0]
        self.published: Optional[bool] = None

    def add(self, logits: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> None:
        """Teacher logits (B, T, V) for B sequences; ``attention_mask`` (B, T) marks the real positions
        (left or right padding; None = all T). Each sequence is stored as its real positions, in order."""
        if logits.dim() != 3 or logits.shape[-1] != self.vocab_size:
            raise ValueError(f"logits must be (B, T, V={self.vocab_size}), got {tuple(logits.shape)}")
        rows = topk_logprobs(logits, self.k, self.store.key.temperature)
        self.add_topk(rows.ids, rows.logprobs, rows.tail, attention_mask)

    def add_topk(self, ids: torch.Tensor, logprobs: torch.Tensor, tail: Optional[torch.Tensor] = None,
                 attention_mask: Optional[torch.Tensor] = None) -> None:
        """Already-computed top-k rows (B, T, k) (e.g. an API's top_logprobs); ``tail`` None =>
        log(1 - sum exp(logprobs)). Log-probs must be at the key's temperature."""
        if ids.dim() != 3 or ids.shape[-1] != self.k or logprobs.shape != ids.shape:
            raise ValueError(f"ids/logprobs must be (B, T, k={self.k}), "
                             f"got {tuple(ids.shape)}, {tuple(logprobs.shape)}")
        lp = logprobs.float()
        if tail is None:
            tail = torch.log1p(-lp.exp().sum(-1).clamp(max=1.0))
        mask = torch.ones(ids.shape[:2], dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        ids_np = ids.cpu().numpy().astype(self.id_dtype)
        lp_np = lp.clamp(min=_FP16_MIN).cpu().numpy().astype("<f2")
        tail_np = tail.float().cpu().numpy().astype("<f2")  # -inf (no tail) survives as fp16 -inf
        for b in range(ids.shape[0]):
            keep = mask[b].cpu().numpy()
            self._files["ids"].write(np.ascontiguousarray(ids_np[b][keep]).tobytes())
            self._files["logprobs"].write(np.ascontiguousarray(lp_np[b][keep]).tobytes())
            self._files["tail"].write(np.ascontiguousarray(tail_np[b][keep]).tobytes())
            self.offsets.append(self.offsets[-1] + int(keep.sum()))

    def abort(self) -> None:
        for f in self._files.values():
            f.close()
        self.store._remove(self.dir)

    def close(self) -> bool:
        """Publish. True if this writer's copy became the store; False if one already existed."""
        for f in self._files.values():
            f.close()
        with fsspec.open(join(self.dir, "offsets.bin"), "wb") as f:
            f.write(np.asarray(self.offsets, dtype="<i8").tobytes())
        if self.store.exists():  # someone finished first: theirs is as good as ours
            self.store._remove(self.dir)
            self.published = False
            return False
        n_tokens = self.offsets[-1]
        data_bytes = n_tokens * (self.k * (self.id_dtype.itemsize + 2) + 2) + 8 * len(self.offsets)
        meta = {"format": FORMAT_VERSION, "key": asdict(self.store.key), "digest": self.store.key.digest(),
                "data": self.name, "k": self.k, "vocab_size": self.vocab_size, "ids_dtype": self.id_dtype.name,
                "n_sequences": len(self.offsets) - 1, "n_tokens": n_tokens, "data_bytes": data_bytes,
                "bytes_per_token": data_bytes / max(n_tokens, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.published = self._publish(json.dumps(meta, indent=2))
        if not self.published:
            self.store._remove(self.dir)
        return self.published

    def _publish(self, text: str) -> bool:
        """Write the marker so that readers see all of it or nothing; True if ours is the store.

        Local disk: hard-link a complete temp file to the marker name; link() fails if the name
        exists, so exactly one writer wins even when several pass the exists() check together.
        Elsewhere (object stores, memory://): temp + rename; simultaneous publishers then both
        "win", the later rename stays, and both data copies are complete and identical.
        """
        fs, marker = fsspec.core.url_to_fs(self.store.marker_url)
        if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            tmp = f"{marker}.tmp-{self.name}"
            with open(tmp, "w") as f:
                f.write(text)
            try:
                os.link(tmp, marker)
                return True
            except FileExistsError:
                return False
            except OSError:  # a filesystem without hard links: fall back to rename
                pass
            finally:
                os.remove(tmp)
        with atomic_open(self.store.marker_url) as f:
            f.write(text)
        return True

    def __enter__(self) -> "TopKWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class TopKReader:
    """Random access to a published store, one byte range per array per sequence."""

    def __init__(self, store: "TopKStore", preload: bool = False):
        with fsspec.open(store.marker_url, "r") as f:
            self.meta = json.load(f)
        if self.meta["format"] != FORMAT_VERSION:
            raise ValueError(f"top-k store {store.url} has format {self.meta['format']}, expected {FORMAT_VERSION}")
        self.fs, root = fsspec.core.url_to_fs(join(store.url, self.meta["data"]))
        self.paths = {n: f"{root}/{n}.bin" for n in ("ids", "logprobs", "tail", "offsets")}
        self.k = int(self.meta["k"])
        self.id_dtype = np.dtype(self.meta["ids_dtype"]).newbyteorder("<")
        self.offsets = np.frombuffer(self.fs.cat_file(self.paths["offsets"]), dtype="<i8")
        self._cache = {n: self.fs.cat_file(self.paths[n]) for n in ("ids", "logprobs", "tail")} if preload else None

    @property
    def n_sequences(self) -> int:
        return len(self.offsets) - 1

    @property
    def temperature(self) -> float:
        return float(self.meta["key"]["temperature"])

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def _bytes(self, name: str, start: int, end: int) -> bytes:
        if self._cache is not None:
            return self._cache[name][start:end]
        return self.fs.cat_file(self.paths[name], start=start, end=end)

    def read(self, i: int) -> TopKRows:
        """Sequence ``i``: ids (L, k) int16 (int32 when V > 32768), logprobs (L, k) fp16, tail (L,) fp16."""
        if not 0 <= i < self.n_sequences:
            raise IndexError(f"sequence {i} not in store of {self.n_sequences}")
        a, b, k = int(self.offsets[i]), int(self.offsets[i + 1]), self.k
        isz = self.id_dtype.itemsize
        ids = np.frombuffer(self._bytes("ids", a * k * isz, b * k * isz), dtype=self.id_dtype).reshape(-1, k)
        lp = np.frombuffer(self._bytes("logprobs", a * k * 2, b * k * 2), dtype="<f2").reshape(-1, k)
        tail = np.frombuffer(self._bytes("tail", a * 2, b * 2), dtype="<f2")
        ids = ids.astype(np.int16 if self.id_dtype.name == "int16" else np.int32)  # uint16 -> int32
        return TopKRows(torch.from_numpy(ids.copy()), torch.from_numpy(lp.astype(np.float16)),
                        torch.from_numpy(tail.astype(np.float16)))

    def read_batch(self, indices: Sequence[int], length: Optional[int] = None,
                   padding_side: str = "right") -> TopKRows:
        """Sequences padded to ``length`` (default: the longest) as (B, T, k) / (B, T) tensors laid
        out like the training batch. Padding rows (ids 0, logprob 0, tail -inf) must carry label -100."""
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        seqs = [self.read(int(i)) for i in indices]
        T = max((s.tail.numel() for s in seqs), default=0) if length is None else int(length)
        B, k = len(seqs), self.k
        ids = torch.zeros(B, T, k, dtype=seqs[0].ids.dtype if seqs else torch.int32)
        lp = torch.zeros(B, T, k, dtype=torch.float16)
        tail = torch.full((B, T), -torch.inf, dtype=torch.float16)
        for b, s in enumerate(seqs):
            L = s.tail.numel()
            if L > T:
                raise ValueError(f"sequence {indices[b]} has {L} stored positions, more than length={T}")
            sl = slice(0, L) if padding_side == "right" else slice(T - L, T)
            ids[b, sl], lp[b, sl], tail[b, sl] = s.ids, s.logprobs, s.tail
        return TopKRows(ids, lp, tail)


class TopKStore:
    """A content-addressed top-k store at ``<root>/topk/<key digest>`` (see module docstring)."""

    def __init__(self, root: str, key: StoreKey):
        self.root, self.key = root, key
        self.url = join(root, "topk", key.digest())
        self.marker_url = join(self.url, MARKER)
        self._open: Optional[TopKReader] = None

    def exists(self) -> bool:
        fs, path = fsspec.core.url_to_fs(self.marker_url)
        return fs.exists(path)

    def writer(self, vocab_size: int) -> TopKWriter:
        return TopKWriter(self, vocab_size)

    def write(self, batches: Iterable[tuple], vocab_size: int) -> bool:
        """Write ``(logits (B, T, V), attention_mask (B, T) | None)`` batches and publish.

        Returns True if this call's copy was published, False if the store already existed (then
        ``batches`` is not consumed: pass a generator and no teacher forward runs) or another
        writer published first."""
        if self.exists():
            return False
        with self.writer(vocab_size) as w:
            for batch in batches:
                logits, mask = (batch if isinstance(batch, (tuple, list)) else (batch, None))
                w.add(logits, mask)
        return bool(w.published)

    def open(self, preload: bool = False) -> TopKReader:
        if not self.exists():
            raise FileNotFoundError(f"no top-k store at {self.url} (write it first)")
        return TopKReader(self, preload=preload)

    def read(self, i: int) -> TopKRows:
        """Sequence ``i`` (see :meth:`TopKReader.read`); the reader is opened once and kept."""
        return self._reader().read(i)

    def read_batch(self, indices: Sequence[int], length: Optional[int] = None,
                   padding_side: str = "right") -> TopKRows:
        """See :meth:`TopKReader.read_batch`."""
        return self._reader().read_batch(indices, length, padding_side)

    def _reader(self) -> TopKReader:
        if self._open is None:
            self._open = self.open()
        return self._open

    def _remove(self, url: str) -> None:
        fs, path = fsspec.core.url_to_fs(url)
        if fs.exists(path):
            fs.rm(path, recursive=True)
