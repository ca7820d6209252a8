"""Read the final set of winning tiles out of free model text.

Tolerant of *form*:
  * where: the text after the last `Answer:` (any case; markdown `**Answer:**` too) up to the end
    of that line, or the next non-empty line when that is blank; with no `Answer:` at all, the
    last non-empty line;
  * order and separators: spaces, commas, semicolons, `and`, `&`, `+`, `/`, `|`, brackets,
    quotes, backticks, `*`, a final full stop;
  * notation, even mixed: compact `14m7p`, spaced `1m 4m 7p`, Unicode `🀇🀊`, `0m` (red five) = `5m`,
    `h` for honors, case (`1M`), honor words (`East`, `red dragon`);
  * the empty set: `none`, `nothing`, `no tiles`, `no winning tile(s)`, `empty (set)`, `not tenpai`,
    `noten`, `{}`, `[]`, `∅`.
Strict about *content*: any other word, a colon, an impossible tile (`8z`) or tiles mixed with
`none` make the answer unreadable (None), so it is graded wrong. The answer is a **set**:
repeating a tile (`1m 1m 4m`) names the same set as `1m 4m` and is collapsed — a set has no
multiplicities, and the question asks which kinds win; an extra or a missing kind is wrong.
"""

from __future__ import annotations

import re

from stratos.tasks.mahjong.tiles import TileError, parse_tiles

_ANSWER = re.compile(r"answer\s*[*_]*\s*:", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s,;+/|&\[\](){}<>\"'`*]+|\band\b")
_EMPTY_PHRASES = {
    "none", "nothing", "no tiles", "no tile", "no winning tiles", "no winning tile", "empty", "empty set",
    "the empty set", "not tenpai", "noten", "∅", "none.",
}
_EMPTY_BRACKETS = re.compile(r"^[\s\[\]{}()]*$")
_HONOR_WORDS = re.compile(
    r"\b(east|south|west|north|white|green|red)(?:\s+(?:wind|dragon))?\b", re.IGNORECASE
)
_HONOR_Z = {"east": "1z", "south": "2z", "west": "3z", "north": "4z", "white": "5z", "green": "6z", "red": "7z"}


def answer_span(text: str) -> str | None:
    """The piece of `text` that holds the final answer (see module doc), or None."""
    matches = list(_ANSWER.finditer(text))
    if matches:
        rest = text[matches[-1].end():]
        lines = rest.split("\n")
        first = lines[0]
        if first.strip(" \t*_"):
            return first
        for ln in lines[1:]:
            if ln.strip(" \t*_"):
                return ln
        return first  # "Answer:" and nothing after it
    lines = [ln for ln in text.split("\n") if ln.strip()]
    return lines[-1] if lines else None


def parse_answer(span: str) -> frozenset[int] | None:
    """One answer string -> set of kind indices (empty set for 'none'), or None if unreadable."""
    s = span.strip().rstrip(".").strip()
    if not s:
        return None  # "Answer:" with nothing: no answer given (an explicit `{}`/`[]` is the empty set)
    if s.lower().strip(" \t*_") in _EMPTY_PHRASES:
        return frozenset()
    if _EMPTY_BRACKETS.match(s):
        return frozenset()
    s = _HONOR_WORDS.sub(lambda m: " " + _HONOR_Z[m.group(1).lower()] + " ", s)
    body = _SEPARATORS.sub(" ", s)
    body = re.sub(r"(?<=\d)M|(?<=\d)P|(?<=\d)S|(?<=\d)Z|(?<=\d)H", lambda m: m.group(0).lower(), body)
    if not body.strip():
        return None
    try:
        kinds = parse_tiles(body)
    except TileError:
        return None  # a stray word, a colon, "8z", tiles next to "none": not an answer we can grade
    return frozenset(kinds)


def extract_tiles(text: str) -> frozenset[int] | None:
    """Final answer of free model text as a set of kind indices; None when there is none."""
    span = answer_span(text)
    return None if span is None else parse_answer(span)
