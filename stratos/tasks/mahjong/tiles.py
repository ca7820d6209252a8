"""Tile notations: compact (`123m456p11z`), spaced (`1m 2m 3m 1z`) and Unicode (U+1F000-U+1F021).

Internally a tile is its *kind index* 0..33, the order of the `mahjong` library's 34-array:

    0..8   man 1-9   (`1m`..`9m`)
    9..17  pin 1-9   (`1p`..`9p`)
    18..26 sou 1-9   (`1s`..`9s`)
    27..33 honors    (`1z`..`7z` = East, South, West, North, White, Green, Red)

and a hand is a 34-long count vector (`counts[k]` = copies of kind k, 0..4).

Unicode's Mahjong Tiles block is *not* in that order: winds E S W N (U+1F000-1F003), then the
dragons Red, Green, White (U+1F004-1F006, the reverse of 5z/6z/7z), man (U+1F007-1F00F), sou
(U+1F010-1F018) and pin last (U+1F019-1F021). Dragons are mapped by meaning, not position.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Sequence

SUITS = "mpsz"
N_KINDS = 34
HONOR_NAMES = ("East", "South", "West", "North", "White", "Green", "Red")
# kinds with a 1 or a 9 plus all honors: the thirteen orphans
ORPHANS = (0, 8, 9, 17, 18, 26, 27, 28, 29, 30, 31, 32, 33)


class TileError(ValueError):
    """Text that is not a well-formed tile or tile list."""


def tile_name(k: int) -> str:
    """Kind index -> `'5p'`."""
    return f"{k % 9 + 1}{SUITS[k // 9]}"


NAMES = tuple(tile_name(k) for k in range(N_KINDS))
_NAME_TO_KIND = {n: k for k, n in enumerate(NAMES)}


def _unicode_codepoint(k: int) -> int:
    suit, num = divmod(k, 9)
    if suit == 0:
        return 0x1F007 + num  # man
    if suit == 1:
        return 0x1F019 + num  # pin comes last in Unicode
    if suit == 2:
        return 0x1F010 + num  # sou
    if num < 4:
        return 0x1F000 + num  # winds E S W N
    return {4: 0x1F006, 5: 0x1F005, 6: 0x1F004}[num]  # White, Green, Red (Unicode lists Red first)


UNICODE = tuple(chr(_unicode_codepoint(k)) for k in range(N_KINDS))
_UNICODE_TO_KIND = {u: k for k, u in enumerate(UNICODE)}
# U+1F004 (Red dragon) has an emoji presentation, so text often carries variation selectors.
_VARIATION_SELECTORS = "\ufe0e\ufe0f"


def to_counts(kinds: Iterable[int]) -> list[int]:
    c = [0] * N_KINDS
    for k in kinds:
        c[k] += 1
    return c


def to_kinds(counts: Sequence[int]) -> list[int]:
    """Count vector -> sorted list of kind indices (with repeats)."""
    return [k for k in range(N_KINDS) for _ in range(counts[k])]


# ---------------------------------------------------------------- formatting
def format_compact(kinds: Iterable[int]) -> str:
    """[0, 1, 2, 27, 27] -> `'123m11z'` (sorted; suits in m p s z order)."""
    ks = sorted(kinds)
    out, digits, suit = [], [], None
    for k in ks:
        s = k // 9
        if s != suit and digits:
            out.append("".join(digits) + SUITS[suit])
            digits = []
        suit = s
        digits.append(str(k % 9 + 1))
    if digits:
        out.append("".join(digits) + SUITS[suit])
    return "".join(out)


def format_spaced(kinds: Iterable[int]) -> str:
    return " ".join(NAMES[k] for k in sorted(kinds))


def format_unicode(kinds: Iterable[int]) -> str:
    return "".join(UNICODE[k] for k in sorted(kinds))


def format_tiles(kinds: Iterable[int], notation: str) -> str:
    """A whole hand in one notation: compact `123m`, spaced `1m 2m 3m`, unicode `🀇🀈🀉`."""
    if notation == "compact":
        return format_compact(kinds)
    if notation == "spaced":
        return format_spaced(kinds)
    if notation == "unicode":
        return format_unicode(kinds)
    raise TileError(f"unknown notation {notation!r}")


def format_tile(k: int, notation: str) -> str:
    """One tile: `'4m'` (compact and spaced agree on a single tile) or its Unicode character."""
    return UNICODE[k] if notation == "unicode" else NAMES[k]


@lru_cache(maxsize=4096)
def format_group(kinds: tuple[int, ...], notation: str) -> str:
    """A meld/pair as one token: `'123m'` / `'11z'`, or Unicode characters run together."""
    return format_unicode(kinds) if notation == "unicode" else format_compact(kinds)


# ---------------------------------------------------------------- parsing
# digits then a suit letter: covers compact (`123m`), spaced (`1m 2m`) and the library's `h` for
# honors. `0` is the red five of aka-dora notation: the same kind as `5`.
_GROUP = re.compile(r"([0-9]+)([mpszh])")


def parse_tiles(text: str) -> list[int]:
    """Tiles in any notation, mixed freely: `'123m 4p🀀'` -> [0, 1, 2, 12, 27].

    Whitespace is the only separator allowed; anything else raises `TileError`. Order is kept.
    """
    out: list[int] = []
    for tok in text.split():
        out += _parse_token(tok)
    return out


@lru_cache(maxsize=4096)
def _parse_token(tok: str) -> tuple[int, ...]:
    # cached: rationales repeat the same few hundred group tokens (`123m`, `11z`) endlessly
    out: list[int] = []
    i, n = 0, len(tok)
    while i < n:
        ch = tok[i]
        if ch in _VARIATION_SELECTORS:
            i += 1
            continue
        if ch in _UNICODE_TO_KIND:
            out.append(_UNICODE_TO_KIND[ch])
            i += 1
            continue
        m = _GROUP.match(tok, i)
        if m is None:
            raise TileError(f"not a tile at {tok[i:i + 8]!r}")
        suit = "z" if m.group(2) == "h" else m.group(2)
        s = SUITS.index(suit)
        for d in m.group(1):
            num = 5 if d == "0" and suit != "z" else int(d)
            if not 1 <= num <= (7 if suit == "z" else 9):
                raise TileError(f"no tile {d}{suit}")
            out.append(9 * s + num - 1)
        i = m.end()
    return tuple(out)


def parse_tile(text: str) -> int:
    """Exactly one tile in any notation."""
    ks = parse_tiles(text)
    if len(ks) != 1:
        raise TileError(f"expected one tile, got {text!r}")
    return ks[0]


def parse_hand(text: str, n: int | None = 13) -> list[int]:
    """A hand in any notation -> count vector; checks the tile count (when `n`) and <= 4 copies."""
    ks = parse_tiles(text)
    if n is not None and len(ks) != n:
        raise TileError(f"expected {n} tiles, got {len(ks)} in {text!r}")
    counts = to_counts(ks)
    over = [NAMES[k] for k in range(N_KINDS) if counts[k] > 4]
    if over:
        raise TileError(f"more than 4 copies of {', '.join(over)} in {text!r}")
    return counts
