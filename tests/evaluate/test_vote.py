"""k-sample voting: the majority rule, seeded sampling, and the evaluate stage / score_file answering by vote."""

from __future__ import annotations

import json

import pytest
import torch

from stratos.evaluate.stage import answer
from stratos.tasks.vote import vote
from stratos.models.generate import sampled_generate
from stratos.models.student import load_student
from stratos.tasks.mahjong.task import MahjongTask

ARCH = {"family": "llama", "hidden": 32, "layers": 2, "heads": 2, "kv_heads": 2, "intermediate": 64,
        "max_position": 128}
TASK = MahjongTask(name="mahjong")


def test_majority_counts_answers_not_texts():
    samples = ["1m: x\n4m: y\nAnswer: 1m 4m", "Answer: 4m 1m", "Answer: 2p", "garbled", "Answer: 2p", "Answer: 4m 1m"]
    v = vote(samples, TASK.extract)
    assert (v.answer, v.count, v.k) == (["1m", "4m"], 3, 6)  # order inside the line does not split the vote
    assert v.text == samples[0]  # the first sample that gave the winner is the one written out


def test_a_tie_goes_to_the_answer_reached_first_and_unreadable_samples_do_not_vote():
    v = vote(["no idea: 8z", "Answer: 2p", "Answer: none", "Answer: none", "Answer: 2p", "?"], TASK.extract)
    assert (v.answer, v.count, v.text) == (["2p"], 2, "Answer: 2p")
    v = vote(["?", "Answer: none"], TASK.extract)
    assert (v.answer, v.count) == ([], 1)  # "none" is an answer (the empty set), and it wins over no answer
    v = vote(["??", "!!"], TASK.extract)
    assert (v.answer, v.count, v.text) == (None, 0, None)


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    texts = ["Hand: 1m 2m 3m\nAnswer: 4m", "Hand: 1z 1z\nAnswer: none", "Hand: 5p 5p\nAnswer: 5p 6p"] * 20
    return load_student("s", arch=ARCH, tokenizer_vocab=300, train_texts=texts)


def test_sampling_is_a_function_of_the_seed_and_leaves_the_global_rng_alone(student):
    qs = ["Hand: 1m 2m 3m", "Hand: 1z", "Hand: 5p 5p 9s"]
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = sampled_generate(student.model, student.tokenizer, qs, 12, k=4, temperature=1.0, seed=7, batch_size=2)
    after = torch.rand(3)
    assert torch.equal(before, after)  # the caller's RNG stream is where it was
    assert [len(s) for s in a] == [4, 4, 4]
    assert a == sampled_generate(student.model, student.tokenizer, qs, 12, k=4, temperature=1.0, seed=7, batch_size=2)
    b = sampled_generate(student.model, student.tokenizer, qs, 12, k=4, temperature=1.0, seed=8, batch_size=2)
    assert a != b  # an untrained model at T = 1 spreads its mass: another seed draws other texts
    assert len({t for s in a for t in s}) > 3  # the k samples of a question differ from each other


def test_answer_by_vote_returns_the_majority_of_the_drawn_samples(student):
    qs = ["Hand: 1m 2m 3m", "Hand: 1z 1z", "Hand: 5p 5p"]
    texts, votes = answer(TASK, student.model, student.tokenizer, qs, 12, 8, samples=5, temperature=1.0, seed=3)
    drawn = sampled_generate(student.model, student.tokenizer, qs, 12, 5, 1.0, 3, 8)
    assert [v.k for v in votes] == [5, 5, 5]
    for text, v, samples in zip(texts, votes, drawn):
        assert text in samples and v == vote(samples, TASK.extract)
    greedy, none = answer(TASK, student.model, student.tokenizer, qs, 12, 8)
    assert none is None and len(greedy) == 3


def test_score_file_answers_by_vote_and_records_the_votes(student, tmp_path, capsys):
    from stratos.evaluate.score_file import main
    from stratos.models.tokenizer import save_tokenizer
    from stratos.tasks.mahjong.jsonl import benchmark_record

    model = tmp_path / "model"
    student.model.save_pretrained(model)
    save_tokenizer(student.tokenizer, str(model))
    bench = tmp_path / "bench.jsonl"
    lines = [benchmark_record("123m456p789s1122z", ["1z", "2z"]), benchmark_record("1m4m7m258p369s1234z", [])]
    bench.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    out = tmp_path / "preds.jsonl"
    assert main(["--model", str(model), "--file", str(bench), "--max-new-tokens", "6", "--samples", "3",
                 "--temperature", "1.0", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])
    assert result["samples"] == 3 and result["n"] == 2
    preds = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(p["samples"] == 3 and 0 <= p["votes"] <= 3 for p in preds)
    assert main(["--model", str(model), "--file", str(bench), "--samples", "0"]) == 2
    assert "invalid value for '--samples': 0" in capsys.readouterr().err
    assert main(["--model", str(model), "--file", str(bench), "--temperature", "0"]) == 2
    assert "invalid value for '--temperature': 0.0 (allowed: a temperature > 0)" in capsys.readouterr().err
