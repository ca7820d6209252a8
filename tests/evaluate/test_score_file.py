"""`python -m stratos.evaluate.score_file` on a public-format ("Mahjong Winning Tiles") JSONL: accuracy and the
per-wait table (items and accuracy for every number of winning tiles, 0 up to the file's largest)."""

from __future__ import annotations

import json

import torch

from stratos.evaluate.score_file import main
from stratos.models.student import load_student
from stratos.models.tokenizer import save_tokenizer
from stratos.tasks.mahjong.jsonl import benchmark_record, score_rows

ARCH = {"family": "llama", "hidden": 32, "layers": 2, "heads": 2, "kv_heads": 2, "intermediate": 64,
        "max_position": 128}
HANDS = [("1112345678999m", "1m 2m 3m 4m 5m 6m 7m 8m 9m"), ("1m4m7m258p369s1234z", ""), ("123m456p789s1122z", "1z 2z"),
         ("123m456p789s1112z", "2z"), ("123m456p789s11z23m", "1m 4m")]  # 9, 0, 2, 1 and 2 winning tiles


def test_score_rows_counts_and_grades_every_wait_count():
    rows = [{"winning_tiles": w.split()} for _, w in HANDS]
    texts = ["Answer: 1m 2m 3m 4m 5m 6m 7m 8m 9m", "Answer: none", "Answer: 1z 2z", "Answer: 1z", "no answer"]
    by = score_rows(rows, texts)["by_waits"]
    assert list(by) == [str(k) for k in range(10)]  # 0..9, empty counts included
    assert by["2"] == {"n": 2, "accuracy": 0.5} and by["9"] == {"n": 1, "accuracy": 1.0}
    assert by["0"] == {"n": 1, "accuracy": 1.0} and by["1"] == {"n": 1, "accuracy": 0.0}
    assert by["5"] == {"n": 0, "accuracy": None}


def test_score_file_prints_the_per_wait_table(tmp_path, capsys):
    torch.manual_seed(0)
    b = load_student("s", arch=ARCH, tokenizer_vocab=300, train_texts=["Hand: 1m 2m 3m\nAnswer: none"] * 30)
    model = tmp_path / "model"
    b.model.save_pretrained(model)
    save_tokenizer(b.tokenizer, str(model))
    lines = [benchmark_record(h, w.split()) for h, w in HANDS]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    assert main(["--model", str(model), "--file", str(bench), "--max-new-tokens", "4", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[0])
    assert result["n"] == len(lines) and sum(c["n"] for c in result["by_waits"].values()) == len(lines)
    assert out[1].startswith("accuracy ") and out[2].split() == ["waits", "n", "accuracy"]
    table = {int(x.split()[0]): x.split()[1:] for x in out[3:]}
    assert sorted(table) == list(range(10)) and table[9][0] == "1" and table[5] == ["0", "-"]
