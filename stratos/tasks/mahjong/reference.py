"""The reference: winning tiles and decompositions from the `mahjong` rules engine alone.

Slow (one `Shanten` call per candidate kind, ~1.2 ms per hand) but independent of our own
tables, so it is the ground truth for tests, the verifier for imported benchmark files, and the
baseline of `python -m benchmarks.mahjong_synthesis`.
"""

from __future__ import annotations

from typing import Sequence

from mahjong.agari import Agari
from mahjong.hand_calculating.divider import HandDivider
from mahjong.shanten import Shanten

from stratos.tasks.mahjong.tiles import N_KINDS, ORPHANS
from stratos.tasks.mahjong.waits import Wait


def is_complete(counts14: Sequence[int], variant: str) -> bool:
    """Does this 14-tile hand win under `variant`? (basic: 4 melds + pair only)."""
    riichi = variant == "riichi"
    return Shanten.calculate_shanten(list(counts14), use_chiitoitsu=riichi, use_kokushi=riichi) == Shanten.AGARI_STATE


def _waits(counts: Sequence[int], complete) -> list[int]:
    """Kinds whose addition makes `complete(hand)` true; kinds held 4 times are skipped (no fifth copy)."""
    h = list(counts)
    out = []
    for k in range(N_KINDS):
        if h[k] >= 4:
            continue
        h[k] += 1
        if complete(h):
            out.append(k)
        h[k] -= 1
    return out


def engine_winning_tiles(counts: Sequence[int], variant: str = "basic") -> list[int]:
    """Add each kind in turn (skipping kinds held 4 times: no fifth copy exists) and ask Shanten."""
    return _waits(counts, lambda h: is_complete(h, variant))


def agari_winning_tiles(counts: Sequence[int]) -> list[int]:
    """Riichi waits by the engine's independent `Agari.is_agari` (checks all three shapes)."""
    return _waits(counts, Agari.is_agari)


def engine_solve(counts: Sequence[int], variant: str = "basic", tiles: Sequence[int] | None = None) -> list[Wait]:
    """Waits with decompositions, engine only: Shanten finds the tiles (unless `tiles` already
    holds them), HandDivider the groups. HandDivider knows 4 melds + pair and seven pairs;
    thirteen orphans has no groups to find.
    """
    out = []
    for t in engine_winning_tiles(counts, variant) if tiles is None else tiles:
        h = list(counts)
        h[t] += 1
        divs = [d for d in HandDivider.divide_hand(h) if len(d) == 5]  # 4 melds + pair first
        if not divs and variant == "riichi":
            divs = [d for d in HandDivider.divide_hand(h) if len(d) == 7]
        if divs:
            d = divs[0]
            kind = "std" if len(d) == 5 else "7p"
            melds = sorted(tuple(g) for g in d if len(g) == 3)
            pairs = sorted(tuple(g) for g in d if len(g) == 2)
            out.append(Wait(t, kind, tuple(melds + pairs) if kind == "std" else tuple(pairs)))
        else:
            out.append(Wait(t, "13o", (tuple(k for k in ORPHANS for _ in range(h[k])),)))
    return out
