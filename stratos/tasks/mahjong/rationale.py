"""Teacher rationales: write them short, and check every one before it is used.

Format (one line per winning tile, ascending, then the answer line):

    1m: 111m 123m 456m 789m 99m
    4m: 111m 234m 456m 789m 99m
    Answer: 1m 4m

Each line names the winning tile, then the groups of hand + that tile: melds in tile order and
the pair last (seven pairs: the seven pairs; thirteen orphans: the 14 tiles per suit, e.g.
`1m: 119m 19p 19s 1234567z`). A hand with no winning tile is just `Answer: none`. With
`notation: unicode` tiles and groups are written as Unicode characters instead.

`verify_rationale` re-reads the *text* (not the solver's data structures): every line must name
a tile the hand holds < 4 times, its groups must use exactly hand + that tile, and they must form a
winning shape of the variant; the answer line must list exactly the line tiles. A corrupted
rationale (wrong group, missing tile, wrong answer) raises `RationaleError`.
"""

from __future__ import annotations

from typing import Sequence

from stratos.tasks.mahjong.tiles import NAMES, ORPHANS, TileError, format_group, format_tile, parse_tile, parse_tiles
from stratos.tasks.base import ANSWER_PREFIX
from stratos.tasks.mahjong.waits import Wait

NONE = "none"


class RationaleError(ValueError):
    """A rationale whose text does not prove its answer."""


def answer_text(tiles: Sequence[int], notation: str = "spaced") -> str:
    """Canonical answer: `'1m 4m 7m'` (ascending), or `'none'`."""
    return " ".join(format_tile(k, notation) for k in sorted(tiles)) if tiles else NONE


def format_line(w: Wait, notation: str = "spaced") -> str:
    if w.kind == "13o":
        full = w.groups[0]
        groups = [tuple(k for k in full if k // 9 == s) for s in range(4)]  # per suit: 119m 19p 19s 1234567z
        body = " ".join(format_group(g, notation) for g in groups if g)
    else:
        body = " ".join(format_group(g, notation) for g in w.groups)
    return f"{format_tile(w.tile, notation)}: {body}"


def format_rationale(waits: Sequence[Wait], notation: str = "spaced") -> str:
    lines = [format_line(w, notation) for w in waits]
    lines.append(f"{ANSWER_PREFIX} {answer_text([w.tile for w in waits], notation)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- verification
def _is_meld(g: Sequence[int]) -> bool:
    if len(g) != 3:
        return False
    a, b, c = sorted(g)
    if a == b == c:
        return True
    # a sequence: three consecutive numbers of one numbered suit (never honors, never 9-1-2)
    return a < 27 and a // 9 == c // 9 and b == a + 1 and c == a + 2


def _is_pair(g: Sequence[int]) -> bool:
    return len(g) == 2 and g[0] == g[1]


def _shape(groups: list[list[int]], counts14: Sequence[int], variant: str) -> str | None:
    """Which winning shape these groups prove, or None."""
    melds = sum(_is_meld(g) for g in groups)
    pairs = [g[0] for g in groups if _is_pair(g)]
    if len(groups) == 5 and melds == 4 and len(pairs) == 1:
        return "std"
    if variant != "riichi":
        return None
    if len(groups) == 7 and len(set(pairs)) == 7:
        return "7p"
    if all(counts14[k] >= 1 for k in ORPHANS) and sum(counts14[k] for k in ORPHANS) == 14:
        return "13o"
    return None


def verify_line(counts: Sequence[int], line: str, variant: str) -> int:
    """Check one `tile: groups` line against the 13-tile hand `counts`; return the tile."""
    head, sep, body = line.partition(":")
    if not sep:
        raise RationaleError(f"line without ':' {line!r}")
    try:
        t = parse_tile(head)
        groups = [parse_tiles(tok) for tok in body.split()]
    except TileError as e:
        raise RationaleError(f"unreadable line {line!r}: {e}") from None
    if counts[t] >= 4:
        raise RationaleError(f"{NAMES[t]} is held 4 times and cannot win")
    want = list(counts)
    want[t] += 1
    got = [0] * 34
    for g in groups:
        for k in g:
            got[k] += 1
    if got != want:
        raise RationaleError(f"groups of {line!r} are not hand + {NAMES[t]}")
    if _shape(groups, want, variant) is None:
        raise RationaleError(f"groups of {line!r} are not a winning shape ({variant})")
    return t


def read_answer_line(line: str) -> tuple[str, list[int]]:
    """(text after the prefix, tiles it names) of a final `Answer: ...` line ([] for `none`)."""
    ans = line[len(ANSWER_PREFIX):].strip()
    try:
        return ans, ([] if ans == NONE else parse_tiles(ans))
    except TileError as e:
        raise RationaleError(f"unreadable answer line: {e}") from None


def verify_rationale(counts: Sequence[int], text: str, variant: str) -> list[int]:
    """Check a whole rationale against the 13-tile hand; return the proven winning tiles.

    Proves soundness (each listed tile wins, by the printed groups). Completeness (no winning
    tile left out) is the solver's job, checked against the engine in the tests; callers compare
    the returned tiles with the solver's.
    """
    lines = text.split("\n")
    if not lines or not lines[-1].startswith(ANSWER_PREFIX):
        raise RationaleError("rationale must end with the answer line")
    tiles = [verify_line(counts, ln, variant) for ln in lines[:-1]]
    if tiles != sorted(set(tiles)):
        raise RationaleError("winning tiles must be listed once each, ascending")
    ans, claimed = read_answer_line(lines[-1])
    if claimed != tiles:
        raise RationaleError(f"answer line {ans!r} does not match the proven tiles")
    return tiles
