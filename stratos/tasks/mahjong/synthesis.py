"""Reverse synthesis of winning-tile questions, resampled to a target wait distribution.

Hands are built backwards: draw a *complete* 14-tile hand (4 melds + a pair; in riichi also seven
pairs or thirteen orphans), remove one tile, and the removed tile is a known winning tile of the
13 left — the answer is never empty by accident. The full answer then comes from the exact
solver (`waits.winning_tiles`; decompositions only for hands kept). Non-tenpai hands (empty
answer) are near misses: a tenpai hand with tiles swapped one at a time until nothing wins, so
"none" cannot be guessed from a hand that merely looks random.

Where the tiles land is a *mode*: `mixed` draws every group's suit uniformly; `half` puts each
group in one main suit with probability 0.7; `flush` puts all of them there. Concentrated hands
have many more waits (nine gates, 1112345678999m, waits on all nine), so when `wait_distribution`
asks for more multi-wait hands than `mixed` yields, the sampler shifts towards the modes that have
landed most often in buckets still open ((landed + 1) / (draws + 2), greedy, 5% exploration).

Splits are drawn in the order test, val, train, each from its own RNG (`Random(f"{seed}:{split}")`)
and all against one `seen` set of canonical hands (the 34-count vector): no hand is in two splits
or twice in one, and the test split does not change when `n_train` does.

Wait counts of `TAIL` or more asked by `wait_distribution` come from the same exact list (below).

A *balanced* split (`task.test_distribution=balanced`) holds equally many hands per number of
winning tiles, 0 up to the variant's largest (`WAIT_COUNTS`). Counts below `TAIL` come from the
sampler above; hands with `TAIL` or more waits are too rare to sample (about 1 draw in 600 even in
`flush` mode for 8 waits) and few enough to list, so `tail_hands` enumerates every one of them
exactly. Seven or more waits only occur with the waits in one numbered suit holding 13 tiles, or
10 tiles beside one complete meld elsewhere (two suits with 2 mod 3 tiles complete at most 5 ways
together, seven pairs adds at most one tile, thirteen orphans 1 or 13). That gives, in both
variants, 471 hands with 7 waits, 282 with 8 and only 3 with 9 (1112345678999 in each suit); riichi
adds the one 13-sided thirteen-orphans hand and nothing has 10 to 12. A wait count whose hands are
fewer than its equal share gets all of them, and the others share the rest equally.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations_with_replacement
from typing import Callable, Mapping, Sequence

from stratos.tasks.mahjong.tiles import N_KINDS, ORPHANS
from stratos.tasks.mahjong.waits import winning_tiles
from stratos.errors import UserError
from stratos.tasks.base import largest_remainder

BUCKETS = ("1", "2", "3", "4", "5", "6", "7", "8", "9+")
NONE_BUCKET = "0"
MODES = (("mixed", 0.0), ("half", 0.7), ("flush", 1.0))
SEVEN_PAIRS_RATE = 0.08  # riichi: share of complete hands drawn as seven pairs
ORPHANS_RATE = 0.005  # riichi: ... as thirteen orphans (only 157 distinct tenpai hands exist)
TRIPLET_RATE = 0.25  # a numbered-suit meld is a triplet (else a sequence)
EXPLORE = 0.05  # share of draws from a uniformly chosen mode, so every mode's rates stay current
SWAPS = 6  # tries to turn a tenpai hand into a near-miss non-tenpai hand
# Numbers of winning tiles a 13-tile hand can have (the buckets of a balanced split); 10-12 never occur.
WAIT_COUNTS = {"basic": tuple(range(10)), "riichi": tuple(range(10)) + (13,)}
TAIL = 7  # wait counts >= TAIL are drawn from the exact list `tail_hands`, not sampled


def bucket(n_waits: int) -> str:
    """Number of winning tiles -> bucket key: "0" (none), "1".."8", "9+"."""
    return NONE_BUCKET if n_waits == 0 else (str(n_waits) if n_waits < 9 else "9+")


def quotas(n: int, nontenpai_rate: float, distribution: dict[str, float]) -> dict[str, int]:
    """Per-bucket counts for a split of n rows (largest-remainder rounding, sums to n).

    Returns {"0": non-tenpai count} plus, when `distribution` is non-empty, one count per bucket;
    an empty distribution means "natural" and the tenpai remainder is under key "*".
    """
    n_none = round(n * nontenpai_rate)
    out = {NONE_BUCKET: n_none}
    rest = n - n_none
    if not distribution:
        out["*"] = rest
        return out
    counts = largest_remainder(rest, [distribution.get(b, 0.0) for b in BUCKETS])
    out.update({b: c for b, c in zip(BUCKETS, counts) if c})
    return out


def balanced_quotas(n: int, counts: Sequence[int], capacity: Mapping[int, int]) -> dict[int, int]:
    """Per wait count, how many of n hands: equal shares; a count with fewer distinct hands than its
    share (`capacity`, absent = unlimited) gets all of them and the others share the rest equally,
    the remainder going to the lowest counts. Sums to n when the capacities allow."""
    want: dict[int, int] = {}
    open_, left = list(counts), n
    while open_:
        share = -(-left // len(open_))  # ceil: a count that cannot reach it is capped
        capped = [k for k in open_ if capacity.get(k, share) < share]
        if not capped:
            break
        for k in capped:
            want[k] = capacity[k]
            left -= capacity[k]
            open_.remove(k)
    if open_:
        q, r = divmod(left, len(open_))
        want.update({k: q + (i < r) for i, k in enumerate(open_)})
    return {k: want[k] for k in counts}


@dataclass
class Example:
    counts: list[int]  # the 13-tile hand
    tiles: list[int]  # its winning tiles (kind indices, ascending); decompositions come later


class Generator:
    """Draws complete hands and derives tenpai / non-tenpai 13-tile hands from them.

    `winning` answers a hand (the fast solver by default; the engine for the benchmark baseline).
    Only the tile *set* is needed to sample; decompositions are built for accepted hands only.
    """

    def __init__(self, variant: str, winning: Callable[[Sequence[int], str], list[int]] = winning_tiles):
        self.variant = variant
        self.winning = winning

    # ------------------------------------------------------------ complete 14-tile hands
    @staticmethod
    def _group(rnd: Callable[[], float], suit: int, pair: bool) -> tuple[int, ...]:
        # int(rnd() * n) instead of randrange: same determinism, a third of the cost
        if suit == 3:
            k = 27 + int(rnd() * 7)
            return (k, k) if pair else (k, k, k)
        if pair:
            k = 9 * suit + int(rnd() * 9)
            return (k, k)
        if rnd() < TRIPLET_RATE:
            k = 9 * suit + int(rnd() * 9)
            return (k, k, k)
        k = 9 * suit + int(rnd() * 7)
        return (k, k + 1, k + 2)

    def standard_hand(self, rng: random.Random, p_main: float) -> list[int]:
        """4 melds + a pair; each group in the main suit with prob p_main, else a uniform suit."""
        rnd = rng.random
        main = int(rnd() * 3)
        c = [0] * N_KINDS
        for i in range(5):
            while True:
                suit = main if rnd() < p_main else int(rnd() * 4)
                g = self._group(rnd, suit, pair=(i == 4))
                for k in g:
                    c[k] += 1
                if c[g[0]] <= 4 and c[g[-1]] <= 4 and c[g[1]] <= 4:  # no fifth copy
                    break
                for k in g:
                    c[k] -= 1
        return c

    def seven_pairs_hand(self, rng: random.Random) -> list[int]:
        c = [0] * N_KINDS
        for k in rng.sample(range(N_KINDS), 7):
            c[k] = 2
        return c

    def orphans_hand(self, rng: random.Random) -> list[int]:
        c = [0] * N_KINDS
        for k in ORPHANS:
            c[k] = 1
        c[rng.choice(ORPHANS)] += 1
        return c

    def complete_hand(self, rng: random.Random, p_main: float) -> list[int]:
        if self.variant == "riichi":
            r = rng.random()
            if r < ORPHANS_RATE:
                return self.orphans_hand(rng)
            if r < ORPHANS_RATE + SEVEN_PAIRS_RATE:
                return self.seven_pairs_hand(rng)
        return self.standard_hand(rng, p_main)

    # ------------------------------------------------------------ 13-tile questions
    def tenpai(self, rng: random.Random, p_main: float) -> Example:
        c = self.complete_hand(rng, p_main)
        kinds = [k for k in range(N_KINDS) if c[k]]
        # remove one of the 14 tiles uniformly (weight each kind by its count)
        r = rng.randrange(14)
        for k in kinds:
            r -= c[k]
            if r < 0:
                c[k] -= 1
                break
        return Example(c, self.winning(c, self.variant))

    def nontenpai(self, rng: random.Random) -> Example | None:
        """A tenpai hand with tiles swapped until nothing wins (None if SWAPS tries fail)."""
        ex = self.tenpai(rng, 0.0)
        c = ex.counts
        for _ in range(SWAPS):
            out = rng.choice([k for k in range(N_KINDS) if c[k]])
            inn = rng.choice([k for k in range(N_KINDS) if c[k] < 4 and k != out])
            c[out] -= 1
            c[inn] += 1
            tiles = self.winning(c, self.variant)
            if not tiles:
                return Example(c, tiles)
        return None


def _draw(gen: Generator, want: dict[str, int], rng: random.Random, seen: set[bytes], shifting: bool,
          what: str, split: str) -> list[Example]:
    """Distinct examples (not in `seen`, which is updated) filling the bucket quotas `want`, unshuffled.

    Keys: "0" (non-tenpai), bucket keys ("1".."8", "9+") or "*" (any tenpai hand). `shifting` lets
    the sampler move between modes (see the module docstring); else every hand is `mixed`.
    """
    n = sum(want.values())
    have = {b: 0 for b in want}
    out: list[Example] = []
    drawn = {m: 0 for m, _ in MODES}  # mode -> draws
    landed = {m: Counter() for m, _ in MODES}  # mode -> bucket -> draws that landed there
    modes = MODES if shifting else MODES[:1]
    budget = 30 * n + 20_000
    tries = 0

    def take(ex: Example, b: str) -> bool:
        key = bytes(ex.counts)
        if key in seen:
            return False
        seen.add(key)
        have[b] += 1
        out.append(ex)
        return True

    while have.get(NONE_BUCKET, 0) < want.get(NONE_BUCKET, 0) and tries < budget:
        tries += 1
        ex = gen.nontenpai(rng)
        if ex is not None:
            take(ex, NONE_BUCKET)
    open_ = {b for b in want if b != NONE_BUCKET and have[b] < want[b]}
    while open_ and tries < budget:
        tries += 1
        if len(modes) == 1:
            name, p = modes[0]
        elif rng.random() < EXPLORE:
            name, p = modes[int(rng.random() * len(modes))]
        else:  # the mode most likely to land in a bucket still open (Laplace-smoothed rate)
            name, p = max(modes, key=lambda m: (sum(landed[m[0]][b] for b in open_) + 1) / (drawn[m[0]] + 2))
        ex = gen.tenpai(rng, p)
        b = "*" if "*" in want else bucket(len(ex.tiles))
        drawn[name] += 1
        landed[name][b] += 1
        if b in open_ and take(ex, b) and have[b] >= want[b]:
            open_.discard(b)
    short = {b: f"{have[b]}/{want[b]}" for b in want if have[b] < want[b]}
    if short:
        names = ", ".join(f"{'none' if b == '0' else b + ' waits'}: {v}" for b, v in short.items())
        raise UserError(f"{what} cannot be met for split '{split}' after {tries} draws (found {names}); "
                        "lower those shares or the split size")
    return out


def synthesize_split(
    gen: Generator,
    n: int,
    rng: random.Random,
    nontenpai_rate: float,
    distribution: dict[str, float],
    seen: set[bytes],
    split: str = "train",
) -> list[Example]:
    """Draw n distinct examples (not in `seen`, which is updated) matching the bucket quotas.

    Buckets of `TAIL` or more winning tiles are filled from the exact list `tail_hands`, as balanced splits are:
    sampling finds them about once in 600 draws even in `flush` mode, so a share of 7-wait hands in a training
    split of a few thousand rows ran out of draws before it was met."""
    what = "task.wait_distribution/nontenpai_rate"
    want = quotas(n, nontenpai_rate, distribution)
    tail = {b: q for b, q in want.items() if q and b not in (NONE_BUCKET, "*") and int(b.rstrip("+")) >= TAIL}
    out = _draw(gen, {b: q for b, q in want.items() if b not in tail}, rng, seen, bool(distribution), what, split)
    out += _from_tail(gen, tail, rng, seen, what, split)
    rng.shuffle(out)
    return out


def _from_tail(gen: Generator, want: dict[str, int], rng: random.Random, seen: set[bytes], what: str,
               split: str) -> list[Example]:
    """Distinct examples for the buckets of `TAIL` or more waits (`want`: bucket -> count), drawn without
    replacement from the hands of `tail_hands` that no earlier split took (`seen`, which is updated)."""
    out: list[Example] = []
    pool = tail_hands(gen.variant)
    for b, q in want.items():
        hands = [c for k, cs in pool.items() if bucket(k) == b for c in cs if bytes(c) not in seen]
        if len(hands) < q:
            raise UserError(f"{what} cannot be met for split '{split}': it asks {q} hands with {b} waits and only "
                            f"{len(hands)} distinct ones exist beside the earlier splits; lower that share or the "
                            "split size")
        for c in rng.sample(hands, q):
            seen.add(bytes(c))
            out.append(Example(list(c), gen.winning(list(c), gen.variant)))
    return out


# ---------------------------------------------------------------- balanced splits
_SUITED_GROUPS = tuple((k, k + 1, k + 2) for k in range(7)) + tuple((k, k, k) for k in range(9))


@lru_cache(maxsize=None)
def _suit_waits(n: int) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Every one-suit shape of n tiles (n = 1 mod 3) that some tile completes to melds + a pair ->
    those tiles (suit-local). Built forwards from the complete (n+1)-tile shapes: no search."""
    waits: dict[tuple[int, ...], set[int]] = defaultdict(set)
    for melds in combinations_with_replacement(_SUITED_GROUPS, (n + 1 - 2) // 3):
        c = [0] * 9
        for g in melds:
            for k in g:
                c[k] += 1
        for p in range(9):
            c[p] += 2
            if max(c) <= 4:
                for t in range(9):
                    if c[t]:
                        c[t] -= 1
                        waits[tuple(c)].add(t)
                        c[t] += 1
            c[p] -= 2
    return {s: tuple(sorted(w)) for s, w in waits.items()}


@lru_cache(maxsize=None)
def tail_hands(variant: str) -> dict[int, tuple[tuple[int, ...], ...]]:
    """Every 13-tile hand with `TAIL` or more winning tiles under `variant`, by number of winning tiles
    (each list sorted, so sampling from it is deterministic per seed). See the module docstring."""
    out: dict[int, set[tuple[int, ...]]] = defaultdict(set)

    def add(c: list[int]) -> None:
        k = len(winning_tiles(c, variant))  # the exact answer, whatever shape produced the hand
        if k >= TAIL:
            out[k].add(tuple(c))

    for s in range(3):
        o = 9 * s
        elsewhere = [tuple(9 * s2 + k for k in g) for s2 in range(3) if s2 != s for g in _SUITED_GROUPS]
        elsewhere += [(k, k, k) for k in range(27, N_KINDS)]
        for n, extra in ((13, [()]), (10, elsewhere)):
            for shape, tiles in _suit_waits(n).items():
                if len(tiles) < TAIL:
                    continue
                for meld in extra:
                    c = [0] * N_KINDS
                    c[o:o + 9] = shape
                    for k in meld:
                        c[k] += 1
                    add(c)
    if variant == "riichi":
        add([1 if k in ORPHANS else 0 for k in range(N_KINDS)])  # the 13-sided thirteen-orphans wait
    return {k: tuple(sorted(out[k])) for k in sorted(out)}


def synthesize_balanced(gen: Generator, n: int, rng: random.Random, seen: set[bytes],
                        split: str = "test") -> list[Example]:
    """n distinct examples (not in `seen`, which is updated), equally many per number of winning tiles
    in `WAIT_COUNTS[gen.variant]` (`balanced_quotas`; a count with too few distinct hands left gets all)."""
    counts = WAIT_COUNTS[gen.variant]
    pool = tail_hands(gen.variant)
    avail = {k: [c for c in pool.get(k, ()) if bytes(c) not in seen] for k in counts if k >= TAIL}
    want = balanced_quotas(n, counts, {k: len(v) for k, v in avail.items()})
    out = _draw(gen, {bucket(k): q for k, q in want.items() if k < TAIL and q}, rng, seen, True,
                "task.test_distribution=balanced", split)
    for k, hands in avail.items():
        for c in rng.sample(hands, want[k]):
            seen.add(bytes(c))
            out.append(Example(list(c), gen.winning(list(c), gen.variant)))
    rng.shuffle(out)
    return out
