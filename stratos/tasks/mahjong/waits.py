"""Fast exact winning-tile solver with memoised per-suit decomposition tables.

Why not ask the engine? `mahjong`'s shanten is ~36 us per call, and the waits of a 13-tile hand
need one call per candidate kind (34): ~1.2 ms per hand, too slow to synthesise thousands of
verified examples per second. Instead:

A 14-tile hand is a *standard* complete hand (4 melds + a pair) iff every suit decomposes on its
own — sequences never cross suits, honors form only triplets/pairs — with exactly one pair
overall. A suit holding n tiles can only be melds when n = 0 (mod 3), melds + the pair when
n = 2 (mod 3), and never when n = 1 (mod 3). So for a 13-tile hand (residues summing to 1 mod 3)
the winning tile can only land in
  * the single suit with residue 1, when all others have residue 0, or
  * one of the two suits with residue 2, when the other two have residue 0;
every other residue pattern has no standard wait at all. For the candidate suit we look up its
*completion table* — every tile t with `decompose(suit + t)` not None — memoised on the suit's
9-count tuple and shared by man, pin and sou; the other suits only need to decompose as they
stand (also memoised). A hand thus costs a handful of dict lookups once the tables are warm.
The tables are bounded by the number of possible suits (9 counts of 0..4 summing to <= 14,
well under a million tuples; a 20k-row build touches a few tens of thousands).

Two paths: `winning_tiles` (tile set only: what sampling needs, the hot path) and `solve`
(adds one decomposition per tile, for the rows actually kept).

Riichi adds seven pairs (six distinct pairs + one single wait on the single) and thirteen orphans
(13 distinct orphans wait on all 13; 12 + a pair wait on the missing one). A kind already held
4 times never wins (there is no fifth copy). `tests/tasks/mahjong/test_waits.py` proves all of this
equals the engine's `Shanten`/`Agari` on thousands of random hands for both variants.

A decomposition is a tuple of groups; a group is a sorted tuple of kind indices: `(k, k)` pair,
`(k, k, k)` triplet, `(k, k+1, k+2)` sequence. The printed one is canonical: depth-first from the
lowest tile, trying triplet, then sequence, then pair, and written melds-in-tile-order, pair last.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Sequence

from stratos.tasks.mahjong.tiles import ORPHANS

Group = tuple[int, ...]
VARIANTS = ("basic", "riichi")


class Wait(NamedTuple):
    tile: int  # kind index of the winning tile
    kind: str  # "std" (4 melds + pair) | "7p" (seven pairs) | "13o" (thirteen orphans)
    groups: tuple[Group, ...]  # a verified decomposition of hand + tile (for "13o": the 14 tiles)


# ---------------------------------------------------------------- one suit
@lru_cache(maxsize=None)
def _decompose_suited(c: tuple[int, ...]) -> tuple[Group, ...] | None:
    """9 counts of one numbered suit (local indices 0..8) -> melds (+ one pair iff n = 2 mod 3)."""
    n = sum(c)
    if n == 0:
        return ()
    r = n % 3
    if r == 1:
        return None
    i = next(j for j in range(9) if c[j])
    lst = list(c)
    if c[i] >= 3:  # triplet
        lst[i] -= 3
        rest = _decompose_suited(tuple(lst))
        lst[i] += 3
        if rest is not None:
            return ((i, i, i),) + rest
    if i <= 6 and c[i + 1] and c[i + 2]:  # sequence (the lowest tile must start one if not a set)
        lst[i] -= 1
        lst[i + 1] -= 1
        lst[i + 2] -= 1
        rest = _decompose_suited(tuple(lst))
        lst[i] += 1
        lst[i + 1] += 1
        lst[i + 2] += 1
        if rest is not None:
            return ((i, i + 1, i + 2),) + rest
    if r == 2 and c[i] >= 2:  # the pair; what is left must be melds only (n - 2 = 0 mod 3)
        lst[i] -= 2
        rest = _decompose_suited(tuple(lst))
        if rest is not None:
            return ((i, i),) + rest
    return None


@lru_cache(maxsize=None)
def _decompose_honors(c: tuple[int, ...]) -> tuple[Group, ...] | None:
    """7 honor counts -> triplets (+ at most one pair); honors form no sequences."""
    groups, pairs = [], 0
    for i, x in enumerate(c):
        if x == 3:
            groups.append((i, i, i))
        elif x == 2:
            groups.append((i, i))
            pairs += 1
        elif x:
            return None  # a single or a fourth copy cannot be placed
    if pairs > 1:
        return None
    return tuple(groups)


_OFFSET = (0, 9, 18, 27)


def _local(suit: int, c: tuple[int, ...]) -> tuple[Group, ...] | None:
    """Decomposition in suit-local indices; the numbered suits share one table (m, p, s alike)."""
    return _decompose_honors(c) if suit == 3 else _decompose_suited(c)


@lru_cache(maxsize=None)
def _local_completions(honors: bool, c: tuple[int, ...]) -> tuple[int, ...]:
    """Local tiles t (held < 4 times) with `c + t` decomposable. The sampling hot path.

    An added tile with no copy and no neighbour within 2 would be a lone single, which no group
    can hold (honors: any honor not held at all), so those are skipped without a lookup.
    """
    out = []
    lst = list(c)
    n = len(c)
    for t in range(n):
        x = lst[t]
        if x >= 4:
            continue
        if x == 0 and (honors or not any(lst[max(0, t - 2):t + 3])):
            continue
        lst[t] = x + 1
        ok = (_decompose_honors if honors else _decompose_suited)(tuple(lst)) is not None
        lst[t] = x
        if ok:
            out.append(t)
    return tuple(out)


@lru_cache(maxsize=None)
def _decompose(suit: int, c: tuple[int, ...]) -> tuple[Group, ...] | None:
    """One suit's decomposition in global kind indices (for printing)."""
    d = _local(suit, c)
    if d is None:
        return None
    o = _OFFSET[suit]
    return tuple(tuple(o + k for k in g) for g in d)


def _completions(suit: int, c: tuple[int, ...]) -> list[tuple[int, tuple[Group, ...]]]:
    """Every winning tile of the suit with the suit's groups: [(global t, groups)]."""
    out = []
    lst = list(c)
    for t in _local_completions(suit == 3, c):
        lst[t] += 1
        out.append((_OFFSET[suit] + t, _decompose(suit, tuple(lst))))
        lst[t] -= 1
    return out


def _order(groups: list[Group]) -> tuple[Group, ...]:
    """Canonical print order: melds by tile, the pair last."""
    melds = sorted(g for g in groups if len(g) == 3)
    pairs = [g for g in groups if len(g) == 2]
    return tuple(melds + pairs)


# ---------------------------------------------------------------- whole hand
def _split(counts: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    return (tuple(counts[0:9]), tuple(counts[9:18]), tuple(counts[18:27]), tuple(counts[27:34]))


def _plan(suits: tuple[tuple[int, ...], ...]) -> list[tuple[int, list[int]]]:
    """Residue analysis: [(suit that receives the tile, suits that must decompose as they are)].

    Also checks those fixed suits; an empty list means no standard wait exists.
    """
    res = [sum(s) % 3 for s in suits]
    ones = [s for s in range(4) if res[s] == 1]
    twos = [s for s in range(4) if res[s] == 2]
    if len(ones) == 1 and not twos:
        cands = ones
    elif len(twos) == 2 and not ones:
        cands = twos
    else:
        return []
    for s in range(4):
        if s not in cands and _local(s, suits[s]) is None:
            return []  # a residue-0 suit that is not melds: no tile elsewhere can fix it
    out = []
    for s in cands:
        fixed = [o for o in range(4) if o != s]
        if all(_local(o, suits[o]) is not None for o in fixed if o in cands):
            out.append((s, fixed))
    return out


def standard_tiles(counts: Sequence[int]) -> list[int]:
    """Winning tiles for 4 melds + a pair, ascending (no decompositions: the cheap path)."""
    suits = _split(counts)
    out: list[int] = []
    for s, _ in _plan(suits):
        o = _OFFSET[s]
        out += [o + t for t in _local_completions(s == 3, suits[s])]
    out.sort()
    return out


def standard_waits(counts: Sequence[int]) -> list[Wait]:
    """Waits that complete 4 melds + a pair, with one decomposition each (13-tile hand)."""
    suits = _split(counts)
    out = []
    for s, fixed in _plan(suits):
        base: list[Group] = []
        for o in fixed:
            base += _decompose(o, suits[o])
        for t, d in _completions(s, suits[s]):
            out.append(Wait(t, "std", _order(base + list(d))))
    out.sort()
    return out


def seven_pairs_wait(counts: Sequence[int]) -> Wait | None:
    """Six distinct pairs + one single wait on the single (four of a kind is not two pairs)."""
    pairs, single = [], None
    for k, x in enumerate(counts):
        if x == 2:
            pairs.append(k)
        elif x == 1 and single is None:
            single = k
        elif x:
            return None
    if len(pairs) != 6 or single is None:
        return None
    return Wait(single, "7p", tuple(sorted([(k, k) for k in pairs] + [(single, single)])))


def thirteen_orphans_waits(counts: Sequence[int]) -> list[Wait]:
    """13 distinct orphans wait on any orphan; 12 + one pair wait on the missing one."""
    if sum(counts[k] for k in ORPHANS) != 13:
        return []  # some tile is not an orphan
    held = [k for k in ORPHANS if counts[k]]
    if len(held) == 13:
        waits = list(ORPHANS)
    elif len(held) == 12 and max(counts[k] for k in ORPHANS) == 2:
        waits = [k for k in ORPHANS if not counts[k]]
    else:
        return []
    out = []
    for t in waits:
        full = sorted([k for k in ORPHANS for _ in range(counts[k])] + [t])
        out.append(Wait(t, "13o", (tuple(full),)))
    return out


def solve(counts: Sequence[int], variant: str = "basic") -> list[Wait]:
    """All winning tiles of a 13-tile closed hand, ascending, each with one decomposition.

    A tile counts once even when several hand shapes complete it; the printed shape is the
    standard one when there is one, else seven pairs, else thirteen orphans.
    """
    waits = {w.tile: w for w in standard_waits(counts)}
    if variant == "riichi":
        sp = seven_pairs_wait(counts)
        if sp is not None:
            waits.setdefault(sp.tile, sp)
        for w in thirteen_orphans_waits(counts):
            waits.setdefault(w.tile, w)
    return [waits[k] for k in sorted(waits)]


def winning_tiles(counts: Sequence[int], variant: str = "basic") -> list[int]:
    """Kind indices of the winning tiles (ascending), no decompositions (what sampling needs)."""
    tiles = standard_tiles(counts)
    if variant == "riichi":
        extra = [w.tile for w in thirteen_orphans_waits(counts)]
        sp = seven_pairs_wait(counts)
        if sp is not None:
            extra.append(sp.tile)
        if extra:
            tiles = sorted(set(tiles).union(extra))
    return tiles


def clear_caches() -> None:
    """Forget the memoised suit tables (benchmarks measure from a cold start)."""
    for f in (_decompose_suited, _decompose_honors, _local_completions, _decompose):
        f.cache_clear()
