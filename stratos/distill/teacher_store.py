"""Offline logit KD: the teacher's top-k log-probs for a dataset, computed once and read per batch.

`strategy.alignment.top_k > 0` with a white-box teacher makes the distill stage call
:func:`open_topk_store` for the train and the validation set. The first run of a sweep pays one
teacher forward per example and writes the store (see :mod:`stratos.distill.logit_store`) under
`paths.cache`; every later run with the same teacher, tokens, k and temperature only reads it,
and concurrent runs compute it once (:func:`stratos.resilience.compute_once`). Training then needs no
teacher in memory at all.

Why a content fingerprint of the weights in the key rather than only the teacher's name: a
teacher directory re-trained in place (`outputs/.../distill/model`) keeps its path, and stale
logits would silently distil the old teacher.
"""

from __future__ import annotations

import hashlib
import logging
import time

import torch

from stratos.distill.examples import ExampleDataset, collate
from stratos.distill.slices import batch_slices, sliced_forward
from stratos.distill.logit_store import StoreKey, TopKReader, TopKStore, dataset_hash, tokenizer_hash
from stratos.resilience import compute_once

log = logging.getLogger("stratos")
PRELOAD_BYTES = 1 << 30  # stores up to 1 GiB are read into memory once; larger ones by byte range


def teacher_fingerprint(teacher) -> str:
    """Name + a hash of the weights: shape, dtype and the first/last 512 values of every tensor.

    Reading a few values per tensor costs milliseconds even for a 70B model yet changes with any
    fine-tuning step, which touches every tensor it trains."""
    h = hashlib.sha256(f"{teacher.name}|{teacher.name_or_path}".encode())
    for name, t in teacher.model.state_dict().items():
        flat = t.detach().reshape(-1)
        head, tail = flat[:512], flat[-512:]
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(head.float().cpu().numpy().tobytes() + tail.float().cpu().numpy().tobytes())
    return f"{teacher.name}-{h.hexdigest()[:16]}"


def store_key(teacher, dataset: ExampleDataset, k: int, temperature: float) -> StoreKey:
    ids = (item.input_ids for item in dataset.items)
    return StoreKey(teacher_id=teacher_fingerprint(teacher), dataset_hash=dataset_hash(ids),
                    k=int(k), tokenizer_hash=tokenizer_hash(teacher.tokenizer), temperature=float(temperature))


def _teacher_batches(teacher, dataset: ExampleDataset, pad_id: int, batch_size: int, what: str,
                     length_slices: int = 1):
    """(logits (B, T, V), attention_mask (B, T)) in dataset order, logging progress. The forward runs
    on length-sorted slices of each batch (slices.py): the store keeps only real positions anyway."""
    fn, n = collate(pad_id), len(dataset)
    forward = lambda i, m: teacher.model(input_ids=i, attention_mask=m, use_cache=False).logits  # noqa: E731
    t0 = last = time.time()
    for start in range(0, n, batch_size):
        batch = fn([dataset[i] for i in range(start, min(n, start + batch_size))])
        ids, mask = batch["input_ids"], batch["attention_mask"]
        with torch.no_grad():
            logits = sliced_forward(forward, ids, mask, batch_slices(mask, length_slices))
        yield logits, batch["attention_mask"]
        done = min(n, start + batch_size)
        if time.time() - last > 10 or done == n:
            last = time.time()
            log.info("top-k store (%s): teacher forward %d/%d examples, %.0f examples/s", what, done, n,
                     done / max(last - t0, 1e-9))


def open_topk_store(teacher, dataset: ExampleDataset, *, cache_root: str, k: int, temperature: float,
                    pad_id: int, batch_size: int = 64, what: str = "train",
                    length_slices: int = 1) -> tuple[TopKReader, dict]:
    """Write the store unless it exists (once across concurrent jobs), then open it.

    Returns (reader, stats) with stats for the manifest: url, bytes/token, whether this call wrote it."""
    key = store_key(teacher, dataset, k, temperature)
    store = TopKStore(cache_root, key)
    vocab = teacher.model.get_output_embeddings().weight.shape[0]
    t0 = time.time()
    batches = lambda: _teacher_batches(teacher, dataset, pad_id, batch_size, what, length_slices)  # noqa: E731
    wrote = compute_once(store.url + ".lock", store.exists, lambda: store.write(batches(), vocab))
    seconds = time.time() - t0
    reader = store.open()
    meta = reader.meta
    if meta["data_bytes"] <= PRELOAD_BYTES:  # small: one read of each array instead of one per batch row
        reader = TopKReader(store, preload=True)
    log.info("top-k store (%s): %s %s, %d tokens, %.1f bytes/token", what, "wrote" if wrote else "reused",
             store.url, meta["n_tokens"], meta["bytes_per_token"])
    if reader.n_sequences != len(dataset):
        raise RuntimeError(f"top-k store {store.url} holds {reader.n_sequences} sequences, dataset has {len(dataset)}")
    stats = {"url": store.url, "written": bool(wrote), "seconds": round(seconds, 2), "k": int(k),
             "n_tokens": int(meta["n_tokens"]), "bytes_per_token": round(float(meta["bytes_per_token"]), 2)}
    return reader, stats
