"""Classification data for ACME: Mahjong shanten buckets, Dirichlet client splits, user datasets.

Mahjong: a random 13-tile hand drawn from the 136-tile wall, written sorted as "1m 1m 2m ... 7z";
its label is the regular-hand shanten number (`mahjong.shanten.Shanten`, 4 melds + a pair)
bucketed into classes. Random hands are mostly 3-4 shanten, so hands are drawn by rejection
until every class holds the same number: the global pool is balanced and all skew comes from the
client split.

Client split (non-IID label skew): for each client k, p_k ~ Dirichlet(alpha * 1_C); its n_train +
n_test examples are drawn class by class from the pool with those proportions, train and test
sharing p_k (a client is tested on its own distribution). Small alpha => few classes per client.

User data: CSV / JSONL / parquet read through fsspec with a text column and a label column.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import fsspec
import numpy as np
from mahjong.shanten import Shanten

from stratos.errors import UserError

SUITS = "mpsz"
# shanten -> class. 0-2 are rare in random hands (~8 %), >= 5 ~ 23 %.
SHANTEN_BUCKETS = ((0, 1, 2), (3,), (4,), (5, 6, 7, 8))
CLASS_NAMES = ("<=2", "3", "4", ">=5")


@dataclass
class Dataset:
    """Texts and integer labels; `classes[i]` names label i."""

    texts: list[str]
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx) -> "Dataset":
        idx = np.asarray(idx, dtype=np.int64)
        return Dataset([self.texts[i] for i in idx], self.labels[idx], self.classes)

    def to_rows(self) -> list[dict]:
        return [{"text": t, "label": int(y)} for t, y in zip(self.texts, self.labels)]

    @classmethod
    def from_rows(cls, rows: list[dict], classes: tuple[str, ...]) -> "Dataset":
        return cls([r["text"] for r in rows], np.array([int(r["label"]) for r in rows], dtype=np.int64), classes)


def hand_text(tiles_136: np.ndarray) -> str:
    """Sorted hand in spaced notation: tile kind k (0..33) -> f"{k % 9 + 1}{suit}"."""
    kinds = np.sort(np.asarray(tiles_136) // 4)
    return " ".join(f"{k % 9 + 1}{SUITS[k // 9]}" for k in kinds)


def shanten_of(tiles_136: np.ndarray) -> int:
    counts = np.bincount(np.asarray(tiles_136) // 4, minlength=34)
    return int(Shanten.calculate_shanten(counts.tolist(), use_chiitoitsu=False, use_kokushi=False))


def bucket(shanten: int) -> int:
    for c, members in enumerate(SHANTEN_BUCKETS):
        if shanten in members:
            return c
    raise ValueError(f"shanten {shanten} is in no bucket")


def random_hands(n: int, rng: np.random.Generator) -> list[str]:
    """`n` unlabelled hands (pretraining / tokenizer corpus)."""
    return [hand_text(rng.choice(136, 13, replace=False)) for _ in range(n)]


def mahjong_dataset(n: int, seed: int) -> Dataset:
    """`n` labelled hands, classes balanced by rejection (n rounded up to a multiple of 4)."""
    rng = np.random.default_rng(seed)
    per = -(-n // len(CLASS_NAMES))
    texts: list[list[str]] = [[] for _ in CLASS_NAMES]
    seen: set[str] = set()
    while min(len(t) for t in texts) < per:
        tiles = rng.choice(136, 13, replace=False)
        text = hand_text(tiles)
        c = bucket(shanten_of(tiles))
        if len(texts[c]) < per and text not in seen:  # no hand twice (would leak across splits)
            seen.add(text)
            texts[c].append(text)
    flat = [(t, c) for c, ts in enumerate(texts) for t in ts]
    order = rng.permutation(len(flat))
    return Dataset([flat[i][0] for i in order], np.array([flat[i][1] for i in order], dtype=np.int64), CLASS_NAMES)


def dirichlet_split(labels: np.ndarray, n_clients: int, n_per_client: int, alpha: float, n_classes: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets, client k's label mix ~ Dirichlet(alpha). Falls back to other classes when one runs out.

    Returns n_clients arrays of `n_per_client` pool indices each.
    """
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in range(n_classes)]
    if sum(len(p) for p in pools) < n_clients * n_per_client:
        raise UserError(f"data pool holds {len(labels)} examples, the clients need {n_clients * n_per_client}: "
                        "lower acme.clients.n_train/n_test or add data")
    out = []
    for _ in range(n_clients):
        p = rng.dirichlet(np.full(n_classes, float(alpha)))
        want = rng.multinomial(n_per_client, p)
        idx: list[int] = []
        for c in np.argsort(-p):  # most wanted class first
            take = min(int(want[c]), len(pools[c]))
            idx += [pools[c].pop() for _ in range(take)]
        while len(idx) < n_per_client:  # a wanted class ran dry: top up from the client's next-likeliest classes
            c = next(c for c in np.argsort(-p) if pools[c])
            idx.append(pools[c].pop())
        out.append(np.array(idx, dtype=np.int64))
    return out


def split_train_test(idx: np.ndarray, labels: np.ndarray, n_train: int, rng: np.random.Generator):
    """Stratified split of one client's indices so train and test share its label distribution."""
    train, test = [], []
    frac = n_train / len(idx)
    for c in np.unique(labels[idx]):
        members = rng.permutation(idx[labels[idx] == c])
        k = int(round(frac * len(members)))
        train += list(members[:k])
        test += list(members[k:])
    train, test = np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)
    return rng.permutation(train), rng.permutation(test)


# ------------------------------------------------------------------ user datasets
def load_user_dataset(url: str, text_field: str = "text", label_field: str = "label") -> Dataset:
    """Rows from CSV, JSONL or parquet (via fsspec). Labels may be ints or strings (mapped in sorted order)."""
    fmt = url.rsplit(".", 1)[-1].lower()
    if fmt not in ("csv", "jsonl", "parquet"):
        raise UserError(f"invalid value for 'acme.source': {url!r} (allowed: a .csv, .jsonl or .parquet file)")
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise UserError(f"acme.source not found: {url!r}")
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("acme.source is parquet but pyarrow is not installed: pip install pyarrow, "
                            "or give a .csv/.jsonl file") from None
        with fs.open(path, "rb") as f:
            rows = pq.read_table(f).to_pylist()
    else:
        with fs.open(path, "r", encoding="utf-8") as f:
            raw = f.read()
        rows = list(csv.DictReader(io.StringIO(raw))) if fmt == "csv" else [
            json.loads(line) for line in raw.splitlines() if line.strip()]
    if not rows:
        raise UserError(f"acme.source {url!r} holds no rows")
    for key in (text_field, label_field):
        if key not in rows[0]:
            raise UserError(f"acme.source {url!r} has no column {key!r} (columns: {sorted(rows[0])}); "
                            "set acme.text_field / label_field")
    raw_labels = [str(r[label_field]) for r in rows]
    names = sorted(set(raw_labels))
    if all(n.lstrip("-").isdigit() for n in names):  # integer labels keep their numeric order
        names.sort(key=int)
    if len(names) < 2:
        raise UserError(f"acme.source {url!r}: column {label_field!r} has one class; need >= 2")
    index = {n: i for i, n in enumerate(names)}
    return Dataset([str(r[text_field]) for r in rows], np.array([index[s] for s in raw_labels], dtype=np.int64),
                   tuple(names))


def balanced_subset(ds: Dataset, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rest): `n` indices with classes as equal as the data allows, the remaining indices."""
    per_class = [list(rng.permutation(np.flatnonzero(ds.labels == c))) for c in range(len(ds.classes))]
    chosen: list[int] = []
    while len(chosen) < min(n, len(ds)):
        for pool in per_class:
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    rest = np.setdiff1d(np.arange(len(ds)), np.array(chosen, dtype=np.int64))
    return np.array(chosen, dtype=np.int64), rng.permutation(rest)
