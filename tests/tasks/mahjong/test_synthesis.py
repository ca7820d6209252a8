import itertools
import random
from collections import Counter

import pytest

from stratos.tasks.mahjong.reference import is_complete
from stratos.tasks.mahjong.synthesis import (BUCKETS, TAIL, WAIT_COUNTS, Generator, balanced_quotas, bucket, quotas,
                                             synthesize_balanced, synthesize_split, tail_hands)
from stratos.tasks.mahjong.waits import winning_tiles
from stratos.tasks.mahjong.task import MahjongTask
from stratos.errors import UserError

FLAT = {"1": 0.2, "2": 0.2, "3": 0.2, "4": 0.15, "5": 0.15, "6": 0.1}


def test_quotas_sum_and_round():
    q = quotas(1000, 0.1, FLAT)
    assert q["0"] == 100 and sum(q.values()) == 1000
    assert q == {"0": 100, "1": 180, "2": 180, "3": 180, "4": 135, "5": 135, "6": 90}
    q = quotas(7, 0.0, {"1": 1, "2": 1, "3": 1})  # 7/3 each: remainders go to the first buckets
    assert sum(q.values()) == 7 and sorted(q[b] for b in "123") == [2, 2, 3]
    assert quotas(10, 0.25, {}) == {"0": 2, "*": 8}  # natural: one tenpai pool (round half to even)
    assert bucket(0) == "0" and bucket(8) == "8" and bucket(9) == "9+" and bucket(13) == "9+"


@pytest.mark.parametrize("variant", ["basic", "riichi"])
def test_generated_hands_are_valid(variant):
    rng = random.Random(1)
    gen = Generator(variant)
    for i in range(400):
        c = gen.complete_hand(rng, [0.0, 0.7, 1.0][i % 3])
        assert sum(c) == 14 and max(c) <= 4 and is_complete(c, variant)
        ex = gen.tenpai(rng, 0.7)
        assert sum(ex.counts) == 13 and max(ex.counts) <= 4 and ex.tiles  # never empty by construction
        nt = gen.nontenpai(rng)
        assert nt is None or (sum(nt.counts) == 13 and max(nt.counts) <= 4 and nt.tiles == [])


def _split(seed, n=400, dist=FLAT, rate=0.1, variant="basic"):
    return synthesize_split(Generator(variant), n, random.Random(seed), rate, dist, set())


def test_deterministic_by_seed():
    a, b, c = _split("s1"), _split("s1"), _split("s2")
    assert [e.counts for e in a] == [e.counts for e in b]
    assert [e.counts for e in a] != [e.counts for e in c]


@pytest.mark.parametrize("variant", ["basic", "riichi"])
def test_resampled_to_the_distribution_exactly(variant):
    exs = _split("d", n=500, variant=variant)
    got = Counter(bucket(len(e.tiles)) for e in exs)
    assert got == Counter({b: k for b, k in quotas(500, 0.1, FLAT).items() if k})
    assert len({bytes(e.counts) for e in exs}) == 500  # no duplicates within the split


def test_natural_distribution_is_the_generators():
    exs = _split("n", n=1000, dist={}, rate=0.0)
    got = Counter(len(e.tiles) for e in exs)
    # the mixed generator mostly makes 2-sided and 1-sided waits, rarely more than 4
    assert got[2] > got[1] > got[3] > got[4] and sum(v for k, v in got.items() if k > 4) < 30
    assert 0 not in got


def test_splits_disjoint_and_test_split_stable():
    kw = dict(n_val=100, n_test=200, seed=5, wait_distribution=FLAT)
    small = MahjongTask(n_train=300, **kw).build_splits()
    big = MahjongTask(n_train=600, **kw).build_splits()
    hands = {s: [r["hand"] for r in rows] for s, rows in small.items()}
    assert {s: len(h) for s, h in hands.items()} == {"train": 300, "val": 100, "test": 200, "test_natural": 200}
    for s, h in hands.items():
        assert len(set(h)) == len(h), s
    for a, b in itertools.combinations(hands, 2):
        assert not (set(hands[a]) & set(hands[b])), (a, b)
    ids = [r["id"] for rows in small.values() for r in rows]
    assert len(set(ids)) == len(ids)
    # the test splits and val are drawn first: growing n_train leaves them untouched
    assert all(big[s] == small[s] for s in ("test", "test_natural", "val"))
    assert len(big["train"]) == 600
    # natural keeps today's test split (same hands, same order); the balanced one is then `test_balanced`
    nat = MahjongTask(n_train=300, test_distribution="natural", **kw).build_splits()
    assert nat["test"] == small["test_natural"] and nat["test_balanced"] == small["test"]
    assert Counter(r["n_waits"] for r in nat["test"]) != Counter(r["n_waits"] for r in nat["test_balanced"])


def test_impossible_distribution_is_a_user_error():
    # basic hands with 9+ waits are the few nine-gates shapes: 50 distinct ones do not exist
    with pytest.raises(UserError, match=r"wait_distribution.*9\+ waits"):
        _split("x", n=50, dist={"9+": 1.0}, rate=0.0)


def test_buckets_are_the_config_keys():
    assert BUCKETS[-1] == "9+" and len(BUCKETS) == 9


def test_balanced_quotas_are_equal_unless_a_count_runs_out():
    assert balanced_quotas(500, range(10), {7: 471, 8: 282, 9: 3}) == {**{k: 56 if k < 2 else 55 for k in range(9)}, 9: 3}
    assert balanced_quotas(30, range(10), {9: 3}) == {k: 3 for k in range(10)}  # 3 is the equal share
    assert balanced_quotas(4, (0, 1, 2, 13), {13: 1}) == {0: 1, 1: 1, 2: 1, 13: 1}
    assert balanced_quotas(3, range(10), {9: 3}) == {k: int(k < 3) for k in range(10)}


def test_tail_hands_are_every_hand_with_many_waits():
    basic, riichi = tail_hands("basic"), tail_hands("riichi")
    assert {k: len(v) for k, v in basic.items()} == {7: 471, 8: 282, 9: 3}
    assert {k: len(v) for k, v in riichi.items()} == {7: 471, 8: 282, 9: 3, 13: 1}
    nine = [bytes(c) for c in basic[9]]
    assert bytes([3, 1, 1, 1, 1, 1, 1, 1, 3] + [0] * 25) in nine  # 1112345678999m
    for variant, pool in (("basic", basic), ("riichi", riichi)):
        assert all(len(winning_tiles(list(c), variant)) == k for k, hands in pool.items() for c in hands)
        every = {c for hands in pool.values() for c in hands}
        gen, rng = Generator(variant), random.Random(7)
        for i in range(6000):  # concentrated hands: every one with >= TAIL waits the sampler meets is listed
            ex = gen.tenpai(rng, (0.7, 1.0)[i % 2])
            assert len(ex.tiles) < TAIL or tuple(ex.counts) in every


@pytest.mark.parametrize("variant", ["basic", "riichi"])
def test_balanced_split_has_equal_counts_per_wait_number(variant):
    n = 300 if variant == "basic" else 301  # 297 for 0..8, plus every hand with 9 (3) [and 13 (1)] waits
    exs = synthesize_balanced(Generator(variant), n, random.Random("b"), set())
    got = Counter(len(e.tiles) for e in exs)
    top = 13 if variant == "riichi" else 9
    assert sorted(got) == list(WAIT_COUNTS[variant]) and max(got) == top
    assert got[9] == 3 and (variant == "basic" or got[13] == 1)  # every such hand there is
    assert {got[k] for k in range(9)} == {33}
    assert len({bytes(e.counts) for e in exs}) == n
    assert all(e.tiles == winning_tiles(e.counts, variant) for e in exs)
    again = synthesize_balanced(Generator(variant), n, random.Random("b"), set())
    assert [e.counts for e in again] == [e.counts for e in exs]
    other = synthesize_balanced(Generator(variant), n, random.Random("c"), set())
    assert [e.counts for e in other] != [e.counts for e in exs]


def test_balanced_split_avoids_seen_hands():
    seen = {bytes(c) for c in tail_hands("basic")[9][:1]} | {bytes(c) for c in tail_hands("basic")[8]}
    exs = synthesize_balanced(Generator("basic"), 100, random.Random(0), seen)
    got = Counter(len(e.tiles) for e in exs)
    assert got[9] == 2 and got[8] == 0 and sum(got.values()) == 100  # the others share what 8 and 9 lack


def test_a_training_share_of_seven_or_more_waits_comes_from_the_exact_list():
    # 300 hands with 7 waits and 120 with 8 in 3,000 rows: sampling alone ran out of draws at 140 of the 300
    dist = {"3": 0.3, "4": 0.3, "5": 0.2, "6": 0.1, "7": 0.1}
    seen = {bytes(c) for c in tail_hands("basic")[7][:50]}  # taken by an earlier split
    exs = synthesize_split(Generator("basic"), 3000, random.Random("t"), 0.0, dist, seen)
    got = Counter(len(e.tiles) for e in exs)
    assert got[7] == 300 and got[3] == 900 and sum(got.values()) == 3000
    assert all(e.tiles == winning_tiles(e.counts, "basic") for e in exs)
    assert len({bytes(e.counts) for e in exs}) == 3000 and len(seen) == 3050
    assert not {bytes(c) for c in tail_hands("basic")[7][:50]} & {bytes(e.counts) for e in exs}
    again = synthesize_split(Generator("basic"), 3000, random.Random("t"), 0.0, dist,
                             {bytes(c) for c in tail_hands("basic")[7][:50]})
    assert [e.counts for e in again] == [e.counts for e in exs]


def test_a_tail_share_larger_than_the_hands_that_exist_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"asks 300 hands with 9\+ waits and only 3 distinct ones exist"):
        synthesize_split(Generator("basic"), 3000, random.Random(0), 0.0, {"1": 0.9, "9+": 0.1}, set())
