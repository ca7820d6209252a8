"""Search rationales: walk every tile that could win, in order, and settle each one in writing.

`task.rationale_format` picks how a rationale reasons (rationale.py holds the shared proof lines):

  proof    one line per winning tile with its groups, then the answer (rationale.py). The student must
           know the whole answer set before it writes the first line.
  search   one line per *candidate* tile, ascending: its groups when it wins, `no` when it does not.
           The student decides one tile at a time, with that tile written in front of it.
  suits    first the suits a winning tile can land in (`Open: m p`), then the search over their
           candidates only (basic rules).

    search                                  suits
    1m: 111m 123m 456m 789m 99m             Open: m
    2m: no                                  1m: 111m 123m ...
    ...                                     ...
    Answer: 1m 4m                           Answer: 1m 4m

Candidates (complete: a winning tile is part of a group of hand + tile, so it pairs or triplets with a
held copy, or forms a sequence with a held tile of its suit at distance <= 2): every kind held fewer
than 4 times that is held, or is a numbered tile within 2 of a held tile of its suit; in riichi, every
orphan too when the hand is all orphans (thirteen orphans can wait on an orphan it does not hold).

Why the open suits: a suit holding n tiles is melds only when n = 0 (mod 3) and melds + the pair when
n = 2, so the tile that completes 4 melds + a pair lands in a suit whose count is not 0 (mod 3)
(waits.py derives the same residues). Seven pairs and thirteen orphans ignore residues, so `suits` is
for basic rules only.

`verify_search` checks the text against the hand: the candidates are exactly these, in order; a
winning line's groups are hand + tile in a winning shape (`verify_line`), and a `no` line names a tile
the solver (itself proven equal to the `mahjong` engine in tests/tasks/mahjong/test_waits.py) says
does not win; the answer lists exactly the winning lines. Sound and complete: it accepts a text iff
the text is this function's output up to the choice of groups.
"""

from __future__ import annotations

from typing import Sequence

from stratos.tasks.base import ANSWER_PREFIX
from stratos.tasks.mahjong.rationale import RationaleError, answer_text, format_line, read_answer_line, verify_line
from stratos.tasks.mahjong.tiles import NAMES, ORPHANS, SUITS, TileError, format_tile, parse_tile
from stratos.tasks.mahjong.waits import Wait, winning_tiles

NO = "no"
OPEN = "Open:"


def open_suits(counts: Sequence[int]) -> list[int]:
    """Suits (0..3 = m p s z) whose tile count is not 0 (mod 3): where a standard winning tile lands."""
    return [s for s in range(4) if sum(counts[9 * s:9 * s + 9]) % 3]  # honors: the slice ends at 34


def candidates(counts: Sequence[int], variant: str, suits: Sequence[int] = (0, 1, 2, 3)) -> list[int]:
    """Kinds that could complete the hand (a superset of the winning tiles), ascending, within `suits`."""
    out = []
    for k in range(34):
        s = k // 9
        if s not in suits or counts[k] >= 4:
            continue
        if counts[k]:
            out.append(k)
        elif s < 3 and any(counts[j] for j in range(max(9 * s, k - 2), min(9 * s + 9, k + 3))):
            out.append(k)
    if variant == "riichi" and sum(counts[k] for k in ORPHANS) == 13:
        out = sorted(set(out).union(k for k in ORPHANS if counts[k] < 4))
    return out


def format_search(counts: Sequence[int], waits: Sequence[Wait], variant: str, notation: str = "spaced",
                  open_only: bool = False) -> str:
    """The search (or, with `open_only`, suits) rationale for a 13-tile hand and its solved waits."""
    by_tile = {w.tile: w for w in waits}
    lines = []
    suits: Sequence[int] = (0, 1, 2, 3)
    if open_only:
        suits = open_suits(counts)
        lines.append(f"{OPEN} {' '.join(SUITS[s] for s in suits)}")
    for k in candidates(counts, variant, suits):
        lines.append(format_line(by_tile[k], notation) if k in by_tile else f"{format_tile(k, notation)}: {NO}")
    lines.append(f"{ANSWER_PREFIX} {answer_text(sorted(by_tile), notation)}")
    return "\n".join(lines)


def verify_search(counts: Sequence[int], text: str, variant: str, open_only: bool = False) -> list[int]:
    """Check a search (or suits) rationale against the 13-tile hand; return the proven winning tiles."""
    lines = text.split("\n")
    if not lines or not lines[-1].startswith(ANSWER_PREFIX):
        raise RationaleError("rationale must end with the answer line")
    body = lines[:-1]
    suits: Sequence[int] = (0, 1, 2, 3)
    if open_only:
        want = open_suits(counts)
        if not body or body[0] != f"{OPEN} {' '.join(SUITS[s] for s in want)}":
            raise RationaleError(f"first line must name the open suits: {OPEN} {' '.join(SUITS[s] for s in want)}")
        body, suits = body[1:], want
    want_tiles = candidates(counts, variant, suits)
    wins = set(winning_tiles(counts, variant))
    proven, seen = [], []
    for line in body:
        head, sep, rest = line.partition(":")
        try:
            t = parse_tile(head)
        except TileError as e:
            raise RationaleError(f"unreadable line {line!r}: {e}") from None
        seen.append(t)
        if rest.strip() == NO:
            if t in wins:
                raise RationaleError(f"{NAMES[t]} wins but the line says no")
        else:
            proven.append(verify_line(counts, line, variant))
    if seen != want_tiles:
        raise RationaleError(f"candidates must be {[NAMES[k] for k in want_tiles]} in order, got "
                             f"{[NAMES[k] for k in seen]}")
    ans, claimed = read_answer_line(lines[-1])
    if claimed != proven:
        raise RationaleError(f"answer line {ans!r} does not match the proven tiles")
    return proven
