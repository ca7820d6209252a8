import json

import fsspec
import numpy as np
import pytest
from mahjong.tile import TilesConverter

from stratos.acme.data import (CLASS_NAMES, bucket, dirichlet_split, hand_text, load_user_dataset, mahjong_dataset,
                               shanten_of, split_train_test)
from stratos.errors import UserError


def test_hand_text_and_shanten_of_a_known_hand():
    tiles = TilesConverter.string_to_136_array(man="123456789", pin="11", sou="45")  # tenpai on 3s/6s
    assert hand_text(np.array(tiles)) == "1m 2m 3m 4m 5m 6m 7m 8m 9m 1p 1p 4s 5s"
    assert shanten_of(np.array(tiles)) == 0
    assert [bucket(s) for s in (0, 2, 3, 4, 5, 8)] == [0, 0, 1, 2, 3, 3]


def test_mahjong_dataset_is_balanced_unique_and_deterministic():
    a, b = mahjong_dataset(200, seed=3), mahjong_dataset(200, seed=3)
    assert a.texts == b.texts and (a.labels == b.labels).all()
    assert np.bincount(a.labels).tolist() == [50] * len(CLASS_NAMES)
    assert len(set(a.texts)) == len(a.texts)
    for text, y in zip(a.texts[:30], a.labels[:30]):  # labels really are the bucketed shanten of the text
        counts = np.zeros(34, dtype=int)
        for t in text.split():
            counts["mpsz".index(t[1]) * 9 + int(t[0]) - 1] += 1
        tiles = np.concatenate([np.arange(k * 4, k * 4 + c) for k, c in enumerate(counts)])
        assert bucket(shanten_of(tiles)) == y


def test_dirichlet_split_disjoint_sized_and_skewed():
    labels = np.repeat(np.arange(4), 300)
    rng = np.random.default_rng(0)
    parts = dirichlet_split(labels, 6, 100, alpha=0.1, n_classes=4, rng=rng)
    flat = np.concatenate(parts)
    assert len(flat) == len(set(flat.tolist())) == 600
    skew_small = np.mean([np.bincount(labels[p], minlength=4).max() / 100 for p in parts])
    parts_big = dirichlet_split(labels, 6, 100, alpha=100.0, n_classes=4, rng=np.random.default_rng(0))
    skew_big = np.mean([np.bincount(labels[p], minlength=4).max() / 100 for p in parts_big])
    assert skew_small > 0.6 > 0.4 > skew_big  # alpha 0.1: one class dominates; alpha 100: near uniform
    with pytest.raises(UserError, match="n_train/n_test"):
        dirichlet_split(labels, 20, 100, 0.3, 4, rng)


def test_split_train_test_is_stratified():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    tr, te = split_train_test(np.arange(100), labels, 50, np.random.default_rng(0))
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == 100
    assert np.bincount(labels[tr]).tolist() == [5, 10, 15, 20]


def test_user_dataset_csv_jsonl_via_fsspec():
    fs = fsspec.filesystem("memory")
    with fs.open("/acme/d.csv", "w") as f:
        f.write("text,label\nhello there,pos\nbad day,neg\nnice,pos\n")
    ds = load_user_dataset("memory://acme/d.csv")
    assert ds.classes == ("neg", "pos") and ds.labels.tolist() == [1, 0, 1] and ds.texts[1] == "bad day"
    with fs.open("/acme/d.jsonl", "w") as f:
        f.write("\n".join(json.dumps({"t": f"x{i}", "y": i % 3 + 8}) for i in range(6)))
    ds = load_user_dataset("memory://acme/d.jsonl", text_field="t", label_field="y")
    assert ds.classes == ("8", "9", "10")  # numeric labels in numeric order
    assert ds.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_user_dataset_errors_are_one_line_user_errors():
    fs = fsspec.filesystem("memory")
    with fs.open("/acme/e.csv", "w") as f:
        f.write("sentence,label\na,1\nb,0\n")
    with pytest.raises(UserError, match="no column 'text'"):
        load_user_dataset("memory://acme/e.csv")
    with pytest.raises(UserError, match="allowed: a .csv"):
        load_user_dataset("memory://acme/e.txt")
    with pytest.raises(UserError, match="not found"):
        load_user_dataset("memory://acme/missing.jsonl")
    with fs.open("/acme/p.parquet", "wb") as f:
        f.write(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pyarrow is not installed"):
            load_user_dataset("memory://acme/p.parquet")
