"""GSM8K and AIME records -> rows: the #### round trip, annotations, field aliases, bad rows."""

from __future__ import annotations

import pytest

from stratos.tasks.math.extract import extract_answer
from stratos.tasks.math.formats import aime_row, field, gsm8k_row, row_id
from stratos.errors import UserError

GSM = {
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                "How many clips did Natalia sell altogether in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
              "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
}


def test_gsm8k_row_round_trip():
    row = gsm8k_row(GSM, "f.jsonl:1")
    assert row["answer"] == "72" and row["steps"] == 2 and row["difficulty"] == "steps=2"
    assert row["rationale"].endswith("\nAnswer: 72") and "<<" not in row["rationale"]
    assert "48/2 = 24 clips" in row["rationale"]
    assert row["calc_ok"] is True and row["synthetic"] is False
    # the reference solution itself, and its converted rationale, both grade as the row's answer
    assert extract_answer(GSM["answer"]) == 72 and extract_answer(row["rationale"]) == 72
    # round trip back to GSM8K format
    assert f"{row['solution']}\n#### {row['answer']}" == GSM["answer"]


def test_gsm8k_wrong_calculator_annotation_is_flagged_not_fatal():
    bad = dict(GSM, answer=GSM["answer"].replace("<<48/2=24>>", "<<48/2=25>>"))
    assert gsm8k_row(bad, "x")["calc_ok"] is False


def test_gsm8k_thousands_and_numeric_variant():
    assert gsm8k_row({"question": "q", "answer": "a\n#### 1,200"}, "x")["answer"] == "1200"
    row = gsm8k_row({"question": "q?", "answer": 7.5, "solution": "3 + 4.5 = 7.5"}, "x")
    assert (row["answer"], row["rationale"]) == ("7.5", "3 + 4.5 = 7.5\nAnswer: 7.5")


@pytest.mark.parametrize("rec,msg", [
    ({"question": "q"}, "needs 'question' and 'answer'"),
    ({"question": "q", "answer": "she sold 5"}, "'#### N'"),
    ({"question": "q", "answer": "x\n#### seventy"}, "must be a number"),
    (["not", "a", "dict"], "expected a JSON object"),
])
def test_gsm8k_bad_rows_name_where(rec, msg):
    with pytest.raises(UserError) as e:
        gsm8k_row(rec, "data/train.jsonl:17")
    assert "data/train.jsonl:17" in str(e.value) and msg in str(e.value)


@pytest.mark.parametrize("rec,answer,sid,bucket", [
    ({"ID": "2024-I-12", "Problem": "p", "Solution": "s", "Answer": 204}, "204", "2024-I-12", "pos=11-15"),
    ({"id": 60, "problem": "p", "answer": "033", "url": "u"}, "33", "60", "aime"),
    ({"Year": 1983, "Problem Number": 3, "Question": "q", "Answer": "0", "Part": None}, "0", "1983-3", "pos=1-5"),
    ({"question": "q", "answer": "\\boxed{7}"}, "7", None, "aime"),
    ({"problem": "q", "solution": "so we get \\boxed{116}."}, "116", None, "aime"),
])
def test_aime_field_aliases(rec, answer, sid, bucket):
    row = aime_row(rec, "x")
    assert (row["answer"], row["source_id"], row["difficulty"]) == (answer, sid, bucket)
    assert row["rationale"].endswith(f"Answer: {answer}")


@pytest.mark.parametrize("rec,msg", [
    ({"problem": "p", "answer": 1000}, "integer 0-999"),
    ({"problem": "p", "answer": "12.5"}, "integer 0-999"),
    ({"problem": "p", "answer": "none"}, "integer 0-999"),
    ({"answer": 5}, "needs 'problem'"),
    ({"problem": "p", "solution": "no boxed answer"}, "no 'answer' field"),
])
def test_aime_bad_rows(rec, msg):
    with pytest.raises(UserError) as e:
        aime_row(rec, "aime.csv:4")
    assert "aime.csv:4" in str(e.value) and msg in str(e.value) and "\n" not in str(e.value)


def test_field_and_row_id():
    assert field({"Problem Number": 3}, "problem_number") == 3
    assert field({"a": "  ", "b": 1}, "a", "b") == 1
    assert row_id("g", "Hello  World") == row_id("g", "hello world") != row_id("g", "hello")
