import json

import fsspec
import pytest

from stratos.tasks.mahjong.jsonl import benchmark_record, read_benchmark, score_rows, write_benchmark
from stratos.tasks.mahjong.task import MahjongTask
from stratos.tasks.mahjong.tiles import NAMES, UNICODE, parse_hand
from stratos.errors import UserError


@pytest.fixture(scope="module")
def rows():
    return MahjongTask(n_train=60, n_val=20, n_test=40, seed=3, variant="riichi").build_splits()["test"]


@pytest.mark.parametrize("url", ["file", "memory://mj/bench.jsonl"])
def test_export_import_round_trip(rows, tmp_path, url):
    path = str(tmp_path / "bench.jsonl") if url == "file" else url
    assert write_benchmark(rows, path) == len(rows)
    with fsspec.open(path, "r", encoding="utf-8") as f:
        first = json.loads(f.readline())
    assert set(first) == {"hand", "winning_tiles"} and len(first["hand"]) == 13
    assert all(t in UNICODE for t in first["hand"] + first["winning_tiles"])  # Unicode tiles, not "1m"
    back = read_benchmark(path, variant="riichi")
    assert [b["counts"] for b in back] == [parse_hand(r["hand"]) for r in rows]
    assert [[NAMES[k] for k in b["winning_tiles"]] for b in back] == [r["winning_tiles"] for r in rows]


def test_record_format():
    rec = benchmark_record("1112345678999m", ["1m", "9m"])
    assert rec == {"hand": [UNICODE[k] for k in (0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8)],
                   "winning_tiles": [UNICODE[0], UNICODE[8]]}


def _write(tmp_path, lines):
    p = tmp_path / "in.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(p)


GOOD = json.dumps(benchmark_record("1112345678999m", [f"{i}m" for i in range(1, 10)]), ensure_ascii=False)
SEVEN = json.dumps(benchmark_record("1133m5577p99s112z", ["2z"]), ensure_ascii=False)

MALFORMED = [
    ("{not json", "not JSON"),
    ('{"hand": []}', "keys 'hand' and 'winning_tiles'"),
    ('{"hand": "1112345678999m", "winning_tiles": []}', "must be a list"),
    (json.dumps({"hand": ["1m"] * 3 + ["2m"] * 9, "winning_tiles": []}), "13 tiles"),
    (json.dumps({"hand": ["1m"] * 5 + ["2m"] * 8, "winning_tiles": []}), "more than 4 copies"),
    (json.dumps({"hand": ["8z"] + ["2m"] * 12, "winning_tiles": []}), "bad tile"),
    (json.dumps({"hand": benchmark_record("1112345678999m", [])["hand"], "winning_tiles": ["1m", "1m"]}), "twice"),
    (json.dumps(benchmark_record("1112345678999m", ["1m"]), ensure_ascii=False), "disagree with the rules engine"),
]


@pytest.mark.parametrize("line,msg", MALFORMED)
def test_malformed_rows_name_file_and_line(tmp_path, line, msg):
    path = _write(tmp_path, [GOOD, "", line])
    with pytest.raises(UserError, match=msg) as e:
        read_benchmark(path, variant="basic")
    assert f"{path}:3:" in str(e.value) and "\n" not in str(e.value)


def test_variant_mismatch_hint_and_missing_file(tmp_path):
    path = _write(tmp_path, [SEVEN])
    assert read_benchmark(path, variant="riichi")[0]["winning_tiles"] == [28]
    with pytest.raises(UserError, match="matches task.variant=riichi"):
        read_benchmark(path, variant="basic")
    with pytest.raises(UserError, match="no such file"):
        read_benchmark(str(tmp_path / "nope.jsonl"))


def test_score_rows(rows):
    bench = [benchmark_record(r["hand"], r["winning_tiles"]) for r in rows[:4]]
    right = [f"...\nAnswer: {' '.join(b['winning_tiles']) or 'none'}" for b in bench]  # Unicode answers
    def head(d):
        return {k: d[k] for k in ("accuracy", "n", "unparsed")}

    assert head(score_rows(bench, right)) == {"accuracy": 1.0, "n": 4, "unparsed": 0}
    texts = right[:2] + ["Answer: 1m 2m 3m 4m 5m 6m 7m 8m 9m 1p", "no idea"]
    got = score_rows(bench, texts)
    assert head(got) == {"accuracy": 0.5, "n": 4, "unparsed": 1}
    assert sum(c["n"] for c in got["by_waits"].values()) == 4  # per number of winning tiles (test_score_file.py)
    # task rows (compact winning_tiles) grade the same way
    assert score_rows(rows[:4], right)["accuracy"] == 1.0
    with pytest.raises(ValueError):
        score_rows(bench, right[:3])
