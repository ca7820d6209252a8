import random

import pytest

from stratos.tasks.mahjong.rationale import RationaleError, answer_text, format_rationale, verify_rationale
from stratos.tasks.mahjong.synthesis import Generator
from stratos.tasks.mahjong.tiles import parse_hand
from stratos.tasks.mahjong.waits import solve

NINE_GATES = parse_hand("1112345678999m")


def test_format_is_short_and_exact():
    text = format_rationale(solve(parse_hand("23m456p789s111z55p")))
    assert text == "1m: 123m 456p 789s 111z 55p\n4m: 234m 456p 789s 111z 55p\nAnswer: 1m 4m"
    assert format_rationale([]) == "Answer: none"
    assert answer_text([27, 0]) == "1m 1z"


def test_special_shapes_and_unicode():
    seven = parse_hand("1133m5577p99s112z")
    assert format_rationale(solve(seven, "riichi")) == "2z: 11m 33m 55p 77p 99s 11z 22z\nAnswer: 2z"
    orphans = parse_hand("119m19p19s123456z")
    assert format_rationale(solve(orphans, "riichi")) == "7z: 119m 19p 19s 1234567z\nAnswer: 7z"
    uni = format_rationale(solve(parse_hand("23m456p789s111z55p")), "unicode")
    assert uni.splitlines()[0] == "\U0001F007: \U0001F007\U0001F008\U0001F009 \U0001F01C\U0001F01D\U0001F01E " \
                                  "\U0001F016\U0001F017\U0001F018 \U0001F000\U0001F000\U0001F000 \U0001F01D\U0001F01D"
    for counts, variant in ((seven, "riichi"), (orphans, "riichi"), (NINE_GATES, "basic")):
        for notation in ("spaced", "unicode"):
            text = format_rationale(solve(counts, variant), notation)
            assert verify_rationale(counts, text, variant) == [w.tile for w in solve(counts, variant)]


@pytest.mark.parametrize("variant", ["basic", "riichi"])
def test_every_generated_rationale_verifies(variant):
    rng = random.Random(0)
    gen = Generator(variant)
    for _ in range(500):
        c = gen.tenpai(rng, rng.choice([0.0, 1.0])).counts
        waits = solve(c, variant)
        assert verify_rationale(c, format_rationale(waits), variant) == [w.tile for w in waits]


GOOD = format_rationale(solve(NINE_GATES))
FIRST = GOOD.splitlines()[0]  # "1m: 111m 123m 456m 789m 99m"

CORRUPTIONS = {
    "a wrong tile in a group": GOOD.replace(FIRST, "1m: 111m 124m 456m 789m 99m"),
    "same tiles, not melds": GOOD.replace(FIRST, "1m: 111m 123m 456m 78m 999m"),
    "a tile dropped from the answer": GOOD.replace(" 8m 9m", " 8m"),
    "an extra tile in the answer": GOOD.replace("8m 9m", "8m 9m 1z"),
    "answer none": GOOD.rsplit("\n", 1)[0] + "\nAnswer: none",
    "no answer line": GOOD.rsplit("\n", 1)[0],
    "lines out of order": "\n".join([GOOD.splitlines()[1], FIRST] + GOOD.splitlines()[2:]),
    "a line twice": FIRST + "\n" + GOOD,
    "a line for a tile that does not win": GOOD.replace(FIRST, "1z: 111m 123m 456m 789m 99m"),
    "a line without a colon": GOOD.replace(FIRST, "1m 111m 123m 456m 789m 99m"),
    "an unreadable group": GOOD.replace(FIRST, "1m: 111m 123m 456m 789m 99x"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_verification_catches_corruption(name):
    with pytest.raises(RationaleError):
        verify_rationale(NINE_GATES, CORRUPTIONS[name], "basic")


def test_structural_rules():
    # a "sequence" across suits or of honors is no meld, even when the tile counts add up
    hand = parse_hand("9m12p123s456s789s1z")
    with pytest.raises(RationaleError, match="winning shape"):
        verify_rationale(hand, "1z: 9m12p 123s 456s 789s 11z\nAnswer: 1z", "basic")
    hand = parse_hand("123z123s456s789s1p")
    with pytest.raises(RationaleError, match="winning shape"):
        verify_rationale(hand, "1p: 123z 123s 456s 789s 11p\nAnswer: 1p", "basic")
    # a kind held 4 times cannot be a winning tile, even with "complete" groups
    quad = parse_hand("1111m234p567p789s")
    with pytest.raises(RationaleError, match="4 times"):
        verify_rationale(quad, "1m: 111m 234p 567p 789s 11m\nAnswer: 1m", "basic")
    # seven pairs and thirteen orphans are riichi-only shapes
    seven = parse_hand("1133m5577p99s112z")
    text = "2z: 11m 33m 55p 77p 99s 11z 22z\nAnswer: 2z"
    assert verify_rationale(seven, text, "riichi") == [28]
    with pytest.raises(RationaleError):
        verify_rationale(seven, text, "basic")
    # four of a kind is not two pairs
    quadpairs = parse_hand("1111m55p77p99s112z")
    with pytest.raises(RationaleError):
        verify_rationale(quadpairs, "2z: 11m 11m 55p 77p 99s 11z 22z\nAnswer: 2z", "riichi")
