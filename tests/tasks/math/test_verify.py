"""The step-by-step verifier catches every kind of wrong rationale."""

from __future__ import annotations

from stratos.tasks.math.verify import grounded_numbers, verify

Q = "Ava has 12 marbles. Ben has twice as many marbles as Ava. Ben sells 25% of them. How many are left?"
GOOD = "Ben: 12 * 2 = 24\npart: 24 * 25 / 100 = 6\nleft: 24 - 6 = 18\nAnswer: 18"


def test_good_rationale_verifies():
    assert verify(Q, GOOD, "18") == []


def test_grounding_includes_words_and_percent_base():
    assert {12, 2, 25, 100} <= grounded_numbers(Q)


def test_wrong_arithmetic_is_caught():
    errs = verify(Q, GOOD.replace("24 - 6 = 18", "24 - 6 = 17").replace("Answer: 18", "Answer: 17"), "17")
    assert any("24 - 6" in e for e in errs)


def test_ungrounded_operand_is_caught():
    errs = verify(Q, "Ben: 12 * 3 = 36\nAnswer: 36", "36")
    assert any("operand 3" in e for e in errs)


def test_answer_mismatch_and_missing_answer_line():
    assert any("last step" in e for e in verify(Q, GOOD.replace("Answer: 18", "Answer: 19"), "19"))
    assert any("Answer: 18" in e for e in verify(Q, GOOD.rsplit("\n", 1)[0], "18"))


def test_malformed_step_and_non_arithmetic_are_caught():
    assert any("not 'label" in e for e in verify(Q, "Ben has 24\nAnswer: 24", "24"))
    assert any("not plain arithmetic" in e for e in verify(Q, "Ben: 12 ** 2 = 144\nAnswer: 144", "144"))
    assert "no steps" in verify(Q, "Answer: 18", "18")
