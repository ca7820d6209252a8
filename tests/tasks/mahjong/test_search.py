"""Search and suits rationales: candidates are complete, texts verify, and every corruption is caught."""

import random

import pytest

from stratos.tasks.mahjong.rationale import RationaleError
from stratos.tasks.mahjong.search import candidates, format_search, open_suits, verify_search
from stratos.tasks.mahjong.synthesis import Generator
from stratos.tasks.mahjong.tiles import parse_hand
from stratos.tasks.mahjong.waits import solve, winning_tiles

MIXED = parse_hand("123m456p789s1122z")  # waits 1z 2z: 17 losing candidates before them


def test_the_search_walks_candidates_in_order_and_settles_each():
    text = format_search(MIXED, solve(MIXED), "basic")
    lines = text.splitlines()
    assert lines[0] == "1m: no" and lines[-3:] == ["1z: 123m 456p 789s 111z 22z", "2z: 123m 456p 789s 222z 11z",
                                                  "Answer: 1z 2z"]
    assert len(lines) == 20 and verify_search(MIXED, text, "basic") == [27, 28]
    suits = format_search(MIXED, solve(MIXED), "basic", open_only=True)
    assert suits.splitlines() == ["Open: z", *lines[-3:]]
    assert verify_search(MIXED, suits, "basic", open_only=True) == [27, 28]


def test_a_hand_with_no_winning_tile_says_no_to_every_candidate():
    c = parse_hand("1469m258p369s123z")
    text = format_search(c, solve(c), "basic")
    assert text.endswith("Answer: none") and all(ln.endswith(": no") for ln in text.splitlines()[:-1])
    assert verify_search(c, text, "basic") == []


@pytest.mark.parametrize("variant", ["basic", "riichi"])
def test_candidates_hold_every_winning_tile_and_generated_texts_verify(variant):
    rng = random.Random(1)
    gen = Generator(variant)
    for _ in range(400):
        c = gen.tenpai(rng, rng.choice([0.0, 1.0])).counts
        wins = winning_tiles(c, variant)
        assert set(wins) <= set(candidates(c, variant))
        assert all(c[k] < 4 for k in candidates(c, variant))
        assert verify_search(c, format_search(c, solve(c, variant), variant), variant) == wins
        if variant == "basic":
            assert set(wins) <= set(candidates(c, variant, open_suits(c)))
            suits = format_search(c, solve(c, variant), variant, open_only=True)
            assert verify_search(c, suits, variant, open_only=True) == wins


def test_thirteen_orphans_candidates_include_orphans_the_hand_lacks():
    c = parse_hand("19m19p19s1234566z")  # 12 orphans + a pair of 6z: waits on the missing 7z
    assert winning_tiles(c, "riichi") == [33] and 33 in candidates(c, "riichi") and 33 not in candidates(c, "basic")


NINE = parse_hand("1112345678999m")
GOOD = format_search(MIXED, solve(MIXED), "basic")
CORRUPTIONS = {
    "a winning tile marked no": GOOD.replace("1z: 123m 456p 789s 111z 22z", "1z: no").replace("Answer: 1z 2z",
                                                                                                "Answer: 2z"),
    "a losing candidate left out": GOOD.replace("1m: no\n", ""),
    "a candidate twice": "1m: no\n" + GOOD,
    "candidates out of order": GOOD.replace("1m: no\n2m: no", "2m: no\n1m: no"),
    "a tile that is no candidate": GOOD.replace("1m: no", "9m: no"),
    "an answer that leaves a proven tile out": GOOD.replace("Answer: 1z 2z", "Answer: 1z"),
    "an answer naming an unproven tile": GOOD.replace("Answer: 1z 2z", "Answer: 1m 1z 2z"),
    "no answer line": GOOD.rsplit("\n", 1)[0],
    "a wrong group": GOOD.replace("1z: 123m 456p 789s 111z 22z", "1z: 124m 456p 789s 111z 22z"),
    "an unreadable tile": GOOD.replace("1m: no", "1x: no"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_verification_catches_corruption(name):
    with pytest.raises(RationaleError):
        verify_search(MIXED, CORRUPTIONS[name], "basic")


def test_suits_verification_checks_the_open_line():
    text = format_search(NINE, solve(NINE), "basic", open_only=True)
    assert text.startswith("Open: m\n")
    for bad in (text.replace("Open: m", "Open: m p"), text.replace("Open: m\n", ""), "Open: p\n" + text[8:]):
        with pytest.raises(RationaleError):
            verify_search(NINE, bad, "basic", open_only=True)
