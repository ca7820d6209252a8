"""MahjongTask.judge: the verifier teacher's line judge, on hand-made right and wrong rollouts.

Sound against the engine: whatever the rollout, `corrected` passes the task's verifier and names the
winning tiles the engine finds; a right rollout is kept as it is.
"""

from __future__ import annotations

import random

import pytest

from stratos.tasks.mahjong.task import MahjongTask
from stratos.tasks.mahjong.tiles import parse_hand
from stratos.tasks.mahjong.waits import solve


def task(fmt="proof", variant="basic", notation="spaced"):
    return MahjongTask(n_train=8, n_val=2, n_test=2, variant=variant, notation=notation, rationale_format=fmt)


def row_for(t, hand):
    counts = parse_hand(hand)
    return t.make_row(counts, solve(counts, t.variant))


# 1112345678999m waits on all nine; 1357m2468p1357s1z on none; 2345m456p789s111z on 2m and 5m
NINE, NOTEN, TWO = "1112345678999m", "1357m2468p1357s1z", "2345m456p789s111z"


def test_the_engines_own_rationale_is_right_line_for_line():
    t = task()
    for hand in (NINE, NOTEN, TWO):
        row = row_for(t, hand)
        j = t.judge(row, row["rationale"])
        n = row["rationale"].count("\n") + 1
        assert j.all_correct and j.correct_lines == j.judged_lines == n and j.corrected == row["rationale"]


def test_another_grouping_of_a_winning_tile_is_right():
    t = task()
    row = row_for(t, TWO)
    lines = row["rationale"].split("\n")
    assert lines[0].startswith("2m:") and lines[1].startswith("5m:") and len(lines) == 3
    regrouped = "2m: 234m 456p 789s 25m 111z"  # hand + 2m, but 25m is no pair: not a winning shape
    assert not t.judge(row, "\n".join([regrouped, *lines[1:]])).correct_lines
    # the same groups written in another order are still hand + 2m in a winning shape
    head, body = lines[0].split(": ")
    shuffled = f"{head}: {' '.join(reversed(body.split()))}"
    j = t.judge(row, "\n".join([shuffled, *lines[1:]]))
    assert j.all_correct and j.corrected.split("\n")[0] == shuffled  # the student's own line is kept


def test_first_wrong_line_is_replaced_by_the_engine_continuation():
    t = task()
    row = row_for(t, NINE)
    ref = row["rationale"].split("\n")
    wrong = ref[:3] + ["4m: 111m 234m 567m 899m 4m", "garbage", "Answer: 1m"]  # line 4 has a bad group
    j = t.judge(row, "\n".join(wrong))
    assert (j.correct_lines, j.judged_lines, j.all_correct) == (3, 4, False)
    assert j.corrected == "\n".join(ref[:3] + ref[3:]) == row["rationale"]


def test_skipping_a_winning_tile_wrong_answer_truncation_and_trailing_text():
    t = task()
    row = row_for(t, NINE)
    ref = row["rationale"].split("\n")
    skipped = t.judge(row, "\n".join([ref[0], ref[2]]))  # 2m left out: line 2 names 3m
    assert skipped.correct_lines == 1 and skipped.corrected == row["rationale"]
    bad_answer = t.judge(row, "\n".join(ref[:-1] + ["Answer: 1m 2m"]))
    assert bad_answer.correct_lines == len(ref) - 1 and bad_answer.corrected == row["rationale"]
    cut = t.judge(row, "\n".join(ref[:2]) + "\n3m: 111m 2")  # a sample cut off mid-line
    assert cut.correct_lines == 2 and not cut.all_correct and cut.corrected == row["rationale"]
    extra = t.judge(row, row["rationale"] + "\nAnswer: 1m")
    assert extra.correct_lines == len(ref) and not extra.all_correct and extra.corrected == row["rationale"]
    assert t.judge(row, "").correct_lines == 0 and t.judge(row, "").judged_lines == 0


def test_no_tenpai_hand_and_search_no_lines():
    t = task("search")
    row = row_for(t, TWO)
    ref = row["rationale"].split("\n")
    i = next(i for i, ln in enumerate(ref) if ln.endswith(": no"))
    flipped = ref[:i] + [ref[i].replace(": no", ": 111m")] + ref[i + 1:]  # a losing tile claimed to win
    assert t.judge(row, "\n".join(flipped)).correct_lines == i
    w = next(i for i, ln in enumerate(ref) if not ln.endswith(": no") and not ln.startswith("Answer"))
    denied = ref[:w] + [ref[w].split(":")[0] + ": no"] + ref[w + 1:]  # a winning tile said to lose
    assert t.judge(row, "\n".join(denied)).correct_lines == w
    noten = row_for(task(), NOTEN)
    assert noten["rationale"] == "Answer: none"
    assert task().judge(noten, "1m: 111m 23m").corrected == "Answer: none"


@pytest.mark.parametrize("fmt,variant,notation", [("proof", "basic", "spaced"), ("search", "basic", "compact"),
                                                  ("suits", "basic", "spaced"), ("proof", "riichi", "unicode"),
                                                  ("search", "riichi", "spaced")])
def test_corrected_always_verifies_against_the_engine(fmt, variant, notation):
    """Random corruptions of real rationales (a line dropped, swapped, mangled, cut, appended): the corrected text
    always passes the task's verifier and is correct; its kept prefix is the rollout's own."""
    t = task(fmt, variant, notation)
    rows = t.build_splits()["train"]
    rng = random.Random(0)
    for row in rows:
        ref = row["rationale"].split("\n")
        for _ in range(25):
            lines = list(ref)
            op = rng.randrange(5)
            i = rng.randrange(len(lines))
            if op == 0:
                del lines[i]
            elif op == 1 and len(lines) > 1:
                j = rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            elif op == 2:
                s = lines[i]
                k = rng.randrange(len(s) + 1)
                lines[i] = s[:k] + rng.choice(["1m", " ", "x", ":", "9z", ""]) + s[k + 1:]
            elif op == 3:
                text = "\n".join(lines)
                lines = text[: rng.randrange(len(text) + 1)].split("\n")
            else:
                lines.append(rng.choice(ref))
            text = "\n".join(lines)
            j = t.judge(row, text)
            counts = parse_hand(row["hand"])
            t.verify(counts, j.corrected)  # raises RationaleError if unsound
            assert t.is_correct(row, j.corrected)
            assert j.corrected.split("\n")[: j.correct_lines] == text.split("\n")[: j.correct_lines]
            assert j.all_correct == (text == row["rationale"] or (j.correct_lines == len(ref) and
                                                                  len(text.split("\n")) == len(ref)))
