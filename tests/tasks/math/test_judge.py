"""MathTask.judge: step-by-step judging of generated rationales against the verifier (the verifier teacher of
on-policy KD); dataset prose has no line judge."""

from __future__ import annotations

import random

from stratos.tasks.math.task import AimeTask, GSM8KTask
from stratos.tasks.math.verify import verify


def rows(task_cls=GSM8KTask, **kw):
    return task_cls(n_train=40, n_val=2, n_test=2, **kw).build_splits()["train"]


def test_the_reference_and_a_reworded_right_solution_are_right():
    t = GSM8KTask(n_train=4, n_val=1, n_test=1)
    row = {"question": "Rahul gets 6 plums every week for 9 weeks. Rosa has 23 more plums than Rahul. How many "
                       "plums does Rosa have in the end?", "answer": "77",
           "rationale": "plums: 6 * 9 = 54\nRosa: 54 + 23 = 77\nAnswer: 77"}
    assert t.judge(row, row["rationale"]).all_correct
    own = "Rahul's plums: 9 * 6 = 54\ntotal: 23 + 54 = 77\nAnswer: 77"  # other labels, operands swapped
    j = t.judge(row, own)
    assert j.all_correct and j.corrected == own
    wrong_sum = t.judge(row, "plums: 6 * 9 = 54\nRosa: 54 + 23 = 78\nAnswer: 78")
    assert (wrong_sum.correct_lines, wrong_sum.judged_lines) == (1, 2)
    assert wrong_sum.corrected == "plums: 6 * 9 = 54\nRosa: 54 + 23 = 77\nAnswer: 77"
    made_up = t.judge(row, "plums: 6 * 10 = 60\nRosa: 60 + 17 = 77\nAnswer: 77")  # 10 and 17 are not in the question
    assert made_up.correct_lines == 0 and made_up.corrected == row["rationale"]
    other_path = t.judge(row, "Rosa: 6 * 9 + 23 = 77\nAnswer: 77")  # right, but not the reference's first result
    assert other_path.correct_lines == 0 and not other_path.all_correct


def test_only_generated_rationales_have_a_line_judge():
    assert GSM8KTask(n_train=4, n_val=1, n_test=1).has_line_judge
    assert not GSM8KTask(n_train=4, n_val=1, n_test=1, source="/data/gsm8k").has_line_judge
    prose = {"question": "What is 2 + 3?", "answer": "5", "rationale": "Two and three make five.\nAnswer: 5"}
    j = GSM8KTask(n_train=4, n_val=1, n_test=1).judge(prose, "x: 2 + 3 = 5\nAnswer: 5")
    assert j.correct_lines == 0 and j.corrected == prose["rationale"]


def test_corrected_always_verifies():
    for cls in (GSM8KTask, AimeTask):
        t = cls(n_train=40, n_val=2, n_test=2)
        rng = random.Random(1)
        for row in t.build_splits()["train"]:
            ref = row["rationale"].split("\n")
            for _ in range(20):
                lines = list(ref)
                i = rng.randrange(len(lines))
                op = rng.randrange(4)
                if op == 0:
                    del lines[i]
                elif op == 1:
                    s = lines[i]
                    k = rng.randrange(len(s) + 1)
                    lines[i] = s[:k] + rng.choice(["1", "0", "+", " ", "=", ""]) + s[k + 1:]
                elif op == 2:
                    text = "\n".join(lines)
                    lines = text[: rng.randrange(len(text) + 1)].split("\n")
                else:
                    lines.insert(i, rng.choice(ref))
                text = "\n".join(lines)
                j = t.judge(row, text)
                assert verify(row["question"], j.corrected, row["answer"]) == [], (text, j)
                assert t.is_correct(row, j.corrected)
                assert j.corrected.split("\n")[: j.correct_lines] == text.split("\n")[: j.correct_lines]
