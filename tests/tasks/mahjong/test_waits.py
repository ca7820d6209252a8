"""The fast solver equals the `mahjong` engine: thousands of hands from seven sources, both variants."""

import random

import pytest
from mahjong.agari import Agari
from mahjong.hand_calculating.divider import HandDivider

from stratos.tasks.mahjong.reference import agari_winning_tiles, engine_solve, engine_winning_tiles
from stratos.tasks.mahjong.synthesis import Generator
from stratos.tasks.mahjong.tiles import ORPHANS, parse_hand
from stratos.tasks.mahjong.waits import solve, winning_tiles

N_PER_SOURCE = 350  # x 7 sources x 2 variants = 4900 hands, ~6 s of engine time


def _uniform(rng):
    c = [0] * 34
    for k in rng.sample([k for k in range(34) for _ in range(4)], 13):
        c[k] += 1
    return c


def _one_suit(rng):
    """13 tiles of one suit (+ maybe honors): where multi-sided waits live."""
    c = [0] * 34
    s = rng.randrange(3)
    pool = [9 * s + i for i in range(9) for _ in range(4)] + ([27 + rng.randrange(7)] * 3 if rng.random() < 0.3 else [])
    for k in rng.sample(pool, 13):
        c[k] += 1
    return c


def _with_quad(rng):
    """A hand holding some kind 4 times, next to shapes that would want a fifth copy."""
    c = [0] * 34
    q = rng.randrange(34)
    c[q] = 4
    while sum(c) < 13:
        k = rng.choice([q - 1, q + 1, q + 2, rng.randrange(34)])
        if 0 <= k < 34 and c[k] < 4:
            c[k] += 1
    return c


def _seven_pairs_like(rng):
    c = [0] * 34
    for k in rng.sample(range(34), 6):
        c[k] = 2
    if rng.random() < 0.3:  # a quad in place of two pairs: never seven pairs
        a, b = rng.sample([k for k in range(34) if c[k] == 2], 2)
        c[a], c[b] = 4, 0
    while sum(c) < 13:
        k = rng.randrange(34)
        if c[k] < 4:
            c[k] += 1
    return c


def _orphans_like(rng):
    c = [0] * 34
    for k in ORPHANS:
        c[k] = 1
    if rng.random() < 0.5:
        c[rng.choice(ORPHANS)] -= 1
        c[rng.choice(ORPHANS)] += 1
    if rng.random() < 0.3:  # one non-orphan in place of an orphan
        c[rng.choice([k for k in ORPHANS if c[k]])] -= 1
        c[rng.choice([k for k in range(34) if k not in ORPHANS])] += 1
    return c


def _hands(variant, seed):
    rng = random.Random(seed)
    gen = Generator(variant)
    for _ in range(N_PER_SOURCE):
        yield gen.tenpai(rng, rng.choice([0.0, 0.7, 1.0])).counts
        ex = gen.nontenpai(rng)
        yield ex.counts if ex else _uniform(rng)
        yield _uniform(rng)
        yield _one_suit(rng)
        yield _with_quad(rng)
        yield _seven_pairs_like(rng)
        yield _orphans_like(rng)


@pytest.mark.parametrize("variant", ["basic", "riichi"])
def test_fast_path_equals_engine(variant):
    n = tenpai = multi = 0
    for c in _hands(variant, seed=11 if variant == "basic" else 12):
        truth = engine_winning_tiles(c, variant)
        assert winning_tiles(c, variant) == truth, (c, variant)
        assert [w.tile for w in solve(c, variant)] == truth
        if variant == "riichi" and n % 3 == 0:
            assert agari_winning_tiles(c) == truth  # the engine's other, independent check
        n += 1
        tenpai += bool(truth)
        multi += len(truth) >= 3
    # the sources really exercise the interesting cases
    assert n == 7 * N_PER_SOURCE and tenpai > n / 6 and multi > n / 30


@pytest.mark.parametrize("variant", ["basic", "riichi"])
def test_decompositions_are_engine_decompositions(variant):
    rng = random.Random(3)
    gen = Generator(variant)
    for _ in range(300):
        c = gen.tenpai(rng, rng.choice([0.0, 1.0])).counts
        for w in solve(c, variant):
            h = list(c)
            h[w.tile] += 1
            if w.kind == "13o":
                assert sorted(w.groups[0]) == [k for k in range(34) for _ in range(h[k])]
                continue
            divisions = [sorted(tuple(g) for g in d) for d in HandDivider.divide_hand(h)]
            assert sorted(w.groups) in divisions
            assert (w.kind == "7p") == (len(w.groups) == 7)


def test_engine_solve_agrees_on_tiles():
    rng = random.Random(4)
    gen = Generator("riichi")
    for _ in range(100):
        c = gen.tenpai(rng, 0.7).counts
        assert [w.tile for w in engine_solve(c, "riichi")] == winning_tiles(c, "riichi")


def test_nine_gates_waits_on_all_nine():
    assert winning_tiles(parse_hand("1112345678999m")) == list(range(9))
    assert winning_tiles(parse_hand("1112345678999s")) == list(range(18, 27))


def test_four_of_a_kind_cannot_win():
    c = parse_hand("1111m234p567p789s")
    # a fifth 1m would complete 111m 11m + three melds (the engine's Agari, unguarded, says so),
    # but there is no fifth copy
    h = list(c)
    h[0] += 1
    assert Agari.is_agari(h)
    for variant in ("basic", "riichi"):
        assert winning_tiles(c, variant) == [] == engine_winning_tiles(c, variant)
    # the same shape with three copies waits on both
    assert winning_tiles(parse_hand("111m234p567p789s5z")) == [27 + 4]


def test_variants_differ_on_seven_pairs_and_orphans():
    seven = parse_hand("1133m5577p99s1122z", 14)  # seven pairs; take one 2z away
    seven[28] -= 1
    assert sum(seven) == 13
    assert winning_tiles(seven, "riichi") == [28] == engine_winning_tiles(seven, "riichi")
    assert winning_tiles(seven, "basic") == [] == engine_winning_tiles(seven, "basic")
    orphans = parse_hand("19m19p19s1234567z")
    assert winning_tiles(orphans, "riichi") == list(ORPHANS) == engine_winning_tiles(orphans, "riichi")
    assert winning_tiles(orphans, "basic") == []
    # four of a kind is not two pairs: 1111m 22m 33m 44m 55m 6m is no seven-pairs wait on 6m
    quad = parse_hand("1111223344556m")
    assert winning_tiles(quad, "riichi") == engine_winning_tiles(quad, "riichi")
