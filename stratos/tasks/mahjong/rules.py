"""The rules of Mahjong that decide winning tiles, as plain text for knowledge injection."""

from __future__ import annotations

from functools import lru_cache

from stratos.tasks.mahjong.rationale import format_rationale, verify_rationale
from stratos.tasks.mahjong.tiles import format_spaced, parse_hand, to_kinds
from stratos.tasks.mahjong.waits import solve

_TILES = """\
Mahjong is played with 136 tiles: four copies of each of 34 kinds. There are three numbered suits,
characters (man, written m), circles (pin, p) and bamboo (sou, s), each numbered 1 to 9, and seven
honor tiles (z): 1z East, 2z South, 3z West, 4z North winds and 5z White, 6z Green, 7z Red dragons.
A tile is written as its number and suit letter, for example 5p or 7z. A hand can be written tile by
tile (1m 2m 3m 7z 7z) or compactly with the digits of one suit before its letter (123m77z)."""

_GROUPS = """\
A winning hand has 14 tiles. The usual winning shape is four melds and one pair. A meld is either a
triplet, three identical tiles (555s, 111z), or a sequence, three consecutive numbers of the same
suit (345m). Honors never form sequences, and sequences do not wrap around (891m is not a meld).
A pair is two identical tiles (99p). Every tile of the hand must belong to exactly one group."""

_RIICHI = """\
Under riichi rules two special shapes also win. Seven pairs: seven pairs of seven different kinds
(four identical tiles do not count as two pairs). Thirteen orphans: one of each 1 and 9 of every suit
and of each honor (1m 9m 1p 9p 1s 9s 1z 2z 3z 4z 5z 6z 7z) plus one more of any of those."""

_WAITS = """\
A hand of 13 tiles waits for the tiles that would complete it: its winning tiles. A hand with at least
one winning tile is ready (tenpai); a hand with none is not. To find the winning tiles, try each of
the 34 kinds: add it, and check whether the 14 tiles form a winning shape ({extra}).
A kind that the hand already holds four times cannot be a winning tile: no fifth copy exists.
When the rest of the hand is already complete, 23m waits on 1m and 4m, 13m waits on 2m, the two pairs
55m 77p wait on 5m and 7p, and a lone 8m waits on 8m (for its pair). One hand can wait in several
ways at once: 1112345678999m waits on every number from 1m to 9m."""

_FORMAT = """\
A worked answer lists each winning tile with the groups it completes, melds first and the pair last,
then the answer line. For the hand {hand} the worked answer is:
{worked}
A hand with no winning tile is answered "Answer: none"."""
_EXAMPLE = "11123456789m11z"  # four waits, one of them an honor: shows that every suit must be tried


@lru_cache(maxsize=None)
def rules_text(variant: str = "basic") -> str:
    """A few paragraphs: tiles and notation, melds and pairs, (riichi shapes), waits, answer format."""
    parts = [_TILES, _GROUPS]
    extra = "four melds and a pair"
    if variant == "riichi":
        parts.append(_RIICHI)
        extra = "four melds and a pair, seven pairs, or thirteen orphans"
    parts.append(_WAITS.format(extra=extra))
    counts = parse_hand(_EXAMPLE)
    # the example is solved and verified here, never typed by hand
    worked = format_rationale(solve(counts, variant))
    verify_rationale(counts, worked, variant)
    parts.append(_FORMAT.format(hand=format_spaced(to_kinds(counts)), worked=worked))
    return "\n\n".join(parts) + "\n"
