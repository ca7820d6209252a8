"""Loading from local/memory fsspec files and folders, the HF path (faked module), and disjoint cuts."""

from __future__ import annotations

import gzip
import json
import sys
import types

import fsspec
import pytest

from stratos.tasks.math.formats import aime_row, gsm8k_row
from stratos.tasks.math.loaders import load_hf, load_source, read_records, split_pools
from stratos.errors import UserError


def gsm(i: int) -> dict:
    return {"question": f"Ann has {i} pens and buys 2 more. How many pens?", "answer": f"{i}+2=<<{i}+2={i + 2}>>"
            f"{i + 2}\n#### {i + 2}"}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_jsonl_file_one_pool_cut_disjoint(tmp_path):
    url = write_jsonl(tmp_path / "gsm.jsonl", [gsm(i) for i in range(30)])
    pools = load_source(url, gsm8k_row)
    assert list(pools) == ["all"] and len(pools["all"]) == 30
    out = split_pools(pools, {"train": 20, "val": 4, "test": 6}, 0, url)
    ids = [set(r["id"] for r in out[s]) for s in ("train", "val", "test")]
    assert [len(x) for x in ids] == [20, 4, 6] and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert out == split_pools(pools, {"train": 20, "val": 4, "test": 6}, 0, url)  # deterministic
    assert out["test"] != split_pools(pools, {"train": 20, "val": 4, "test": 6}, 1, url)["test"]
    # the test set does not depend on how many train rows are asked for
    assert split_pools(pools, {"train": 5, "val": 4, "test": 6}, 0, url)["test"] == out["test"]


def test_folder_with_train_and_test_files_keeps_test_apart(tmp_path):
    d = tmp_path / "gsm8k"
    d.mkdir()
    write_jsonl(d / "train.jsonl", [gsm(i) for i in range(20)])
    write_jsonl(d / "test.jsonl", [gsm(i) for i in range(100, 110)] + [gsm(3)])  # gsm(3) leaks from train
    pools = load_source(str(d), gsm8k_row)
    assert sorted(pools) == ["test", "train"]
    out = split_pools(pools, {"train": 15, "val": 4, "test": 11}, 0, str(d))
    test_ids = {r["id"] for r in out["test"]}
    assert test_ids == {r["id"] for r in pools["test"]}
    assert not test_ids & {r["id"] for r in out["train"] + out["val"]}  # the leaked question stays in test only


def test_memory_fsspec_url_and_gzip(tmp_path):
    with fsspec.open("memory://math/gsm.jsonl", "w") as f:
        f.write("".join(json.dumps(gsm(i)) + "\n" for i in range(5)))
    assert len(load_source("memory://math/gsm.jsonl", gsm8k_row)["all"]) == 5
    with fsspec.open("memory://math/split/test.jsonl", "w") as f:
        f.write(json.dumps(gsm(1)) + "\n")
    with fsspec.open("memory://math/split/train.jsonl", "w") as f:
        f.write(json.dumps(gsm(2)) + "\n")
    assert sorted(load_source("memory://math/split", gsm8k_row)) == ["test", "train"]
    gz = tmp_path / "gsm.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(json.dumps(gsm(i)).encode() + b"\n" for i in range(3))))
    assert len(load_source(str(gz), gsm8k_row)["all"]) == 3


def test_aime_csv_and_json(tmp_path):
    csv_path = tmp_path / "aime.csv"
    csv_path.write_text('ID,Year,Problem Number,Question,Answer,Part\n'
                        '1983-1,1983,1,"Let x, y be\nreals. Find x.",60,\n'
                        '1983-2,1983,2,Find y.,012,\n')
    rows = load_source(str(csv_path), aime_row)["all"]
    assert [r["answer"] for r in rows] == ["60", "12"] and rows[0]["source_id"] == "1983-1"
    js = tmp_path / "aime.json"
    js.write_text(json.dumps({"data": [{"problem": "p1", "answer": 5}, {"problem": "p2", "answer": 6}]}))
    assert [r["answer"] for r in load_source(str(js), aime_row)["all"]] == ["5", "6"]


def test_bad_line_is_named(tmp_path):
    url = write_jsonl(tmp_path / "gsm.jsonl", [gsm(0), gsm(1)])
    with open(url, "a") as f:
        f.write('{"question": "q", "answer": "no final"}\n')
    with pytest.raises(UserError, match=r"gsm\.jsonl:3: .*'#### N'"):
        load_source(url, gsm8k_row)
    with open(url, "a") as f:
        f.write("{not json\n")
    with pytest.raises(UserError, match=r"gsm\.jsonl:4: not valid JSON"):
        read_records(url)
    bad_csv = tmp_path / "aime.csv"
    bad_csv.write_text("problem,answer\nfirst,5\nsecond,1234\n")
    with pytest.raises(UserError, match=r"aime\.csv:3: AIME answer must be an integer 0-999"):
        load_source(str(bad_csv), aime_row)


@pytest.mark.parametrize("name,msg", [("missing.jsonl", "does not exist"), ("data.txt", "unknown extension")])
def test_bad_paths(tmp_path, name, msg):
    if name.endswith(".txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(UserError, match=msg):
        load_source(str(tmp_path / name), gsm8k_row)


def test_folder_without_split_files(tmp_path):
    (tmp_path / "notes.jsonl").write_text("")
    with pytest.raises(UserError, match="no train/test/val files"):
        load_source(str(tmp_path), gsm8k_row)


def test_too_few_rows_says_how_many(tmp_path):
    url = write_jsonl(tmp_path / "gsm.jsonl", [gsm(i) for i in range(10)] + [gsm(0)])  # a duplicate question
    with pytest.raises(UserError, match=r"task.n_train=8 but .* has only 7 unused train rows"):
        split_pools(load_source(url, gsm8k_row), {"train": 8, "val": 1, "test": 2}, 0, url)


def test_parquet_without_pyarrow_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "a.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match="needs pyarrow"):
        load_source(str(tmp_path / "a.parquet"), gsm8k_row)


# ---------------------------------------------------------------- Hugging Face (`datasets` is not installed here)
def test_hf_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails even if someone installs it
    with pytest.raises(UserError, match=r"task.hf_dataset='openai/gsm8k' needs the `datasets` package"):
        load_hf("openai/gsm8k", "main", gsm8k_row)


def fake_datasets(splits: dict[str, list[dict]], fail: Exception | None = None):
    calls = []
    mod = types.ModuleType("datasets")

    def get_dataset_split_names(name, config=None):
        if fail:
            raise fail
        return list(splits)

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return iter(splits[split])  # a Dataset iterates as dicts

    mod.get_dataset_split_names, mod.load_dataset, mod.calls = get_dataset_split_names, load_dataset, calls
    return mod


def test_hf_loads_every_split_with_the_documented_api(monkeypatch):
    mod = fake_datasets({"train": [gsm(i) for i in range(8)], "test": [gsm(i) for i in range(50, 54)]})
    monkeypatch.setitem(sys.modules, "datasets", mod)
    pools = load_hf("openai/gsm8k", "main", gsm8k_row)
    assert mod.calls == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]
    assert (len(pools["train"]), len(pools["test"])) == (8, 4)


def test_hf_offline_and_bad_rows_are_user_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets({}, fail=ConnectionError("Couldn't reach hub\nmore")))
    with pytest.raises(UserError, match="could not be loaded: ConnectionError: Couldn't reach hub") as e:
        load_hf("openai/gsm8k", None, gsm8k_row)
    assert "\n" not in str(e.value)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets({"train": [gsm(0), {"question": "q"}]}))
    with pytest.raises(UserError, match=r"openai/gsm8k\[train\] row 1"):
        load_hf("openai/gsm8k", None, gsm8k_row)
