"""Exact-match grading, self-consistency voting (tie rule) and per-difficulty breakdown."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from stratos.tasks.math.extract import extract_aime
from stratos.tasks.math.grading import breakdown, is_correct, majority_vote, vote


@pytest.mark.parametrize("text,answer,ok", [
    ("Answer: 2.50", "2.5", True), ("Answer: 5/2", "2.5", True), ("#### 1,000", "1000", True),
    ("Answer: 18", "17", False), ("no idea", "17", False), ("Answer: -4", "-4", True), ("The answer is 7.", 7, True),
])
def test_is_correct_gsm8k(text, answer, ok):
    assert is_correct(text, answer) is ok


def test_is_correct_aime_requires_integer_range():
    assert is_correct("Answer: 042", "42", fmt="aime")
    assert not is_correct("Answer: 42.0001", "42", fmt="aime")
    assert not is_correct("Answer: 1042", "42", fmt="aime")


def test_is_correct_rejects_non_numeric_reference():
    with pytest.raises(ValueError):
        is_correct("Answer: 3", "three")


def test_majority_vote_counts_equal_values_in_any_format():
    texts = ["Answer: 2.5", "Answer: 3", "#### 5/2", "\\boxed{2.50}", "Answer: 3"]
    assert majority_vote(texts) == F(5, 2)
    v = vote(texts)
    assert (v.count, v.k, v.text) == (3, 5, "Answer: 2.5")


def test_majority_vote_tie_goes_to_the_earliest_first_occurrence():
    # 3 and 4 both have two votes; 4 appears first (index 0), so 4 wins regardless of count order
    assert majority_vote(["Answer: 4", "Answer: 3", "Answer: 3", "Answer: 4"]) == F(4)
    assert majority_vote(["Answer: 3", "Answer: 4", "Answer: 4", "Answer: 3"]) == F(3)
    assert majority_vote(["Answer: 9", "Answer: 8"]) == F(9)


def test_majority_vote_ignores_unanswered_and_handles_none():
    assert majority_vote(["blah", "", "Answer: 7"]) == F(7)
    assert majority_vote(["blah", "nothing"]) is None
    assert majority_vote([]) is None
    assert vote(["blah"]).k == 1


def test_majority_vote_with_another_extractor_and_unhashable_answers():
    assert majority_vote(["Answer: 042", "Answer: 42", "Answer: 7"], extract=extract_aime) == 42
    sets = {"a": [1, 2], "b": [2, 1], "c": [3]}
    assert majority_vote(["c", "a", "a"], extract=lambda t: sets[t]) == [1, 2]


def test_breakdown_natural_order_and_counts():
    rows = [{"difficulty": d} for d in ("steps=10", "steps=2", "steps=2", "steps=9", "steps=10")]
    out = breakdown(rows, [True, False, True, True, False])
    assert list(out) == ["steps=2", "steps=9", "steps=10"]
    assert out["steps=2"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert out["steps=10"]["accuracy"] == 0.5 and out["steps=9"]["accuracy"] == 1.0
    with pytest.raises(ValueError):
        breakdown(rows, [True])
