import pytest

from stratos.tasks.mahjong.answer import extract_tiles
from stratos.tasks.mahjong.tiles import parse_tiles

M1_M4_P7 = frozenset(parse_tiles("1m 4m 7p"))

# text -> the set it names (form may vary freely)
TOLERANT = [
    ("Answer: 1m 4m 7p", M1_M4_P7),
    ("Answer: 7p 1m 4m", M1_M4_P7),  # order
    ("Answer:1m,4m,7p", M1_M4_P7),  # spacing, commas
    ("answer: 14m7p", M1_M4_P7),  # compact, lower-case prefix
    ("ANSWER: 1M 4M 7P.", M1_M4_P7),  # case, full stop
    ("Answer: \U0001F007\U0001F00A\U0001F01F", M1_M4_P7),  # Unicode
    ("Answer: 1m \U0001F00A 7p", M1_M4_P7),  # mixed
    ("Answer: [1m, 4m, 7p]", M1_M4_P7),
    ("Answer: {'1m', '4m', '7p'}", M1_M4_P7),
    ("Answer: 1m; 4m and 7p", M1_M4_P7),
    ("**Answer:** `1m 4m 7p`", M1_M4_P7),  # markdown
    ("Answer:\n1m 4m 7p", M1_M4_P7),  # answer on the next line
    ("Answer: 1m 1m 4m 7p", M1_M4_P7),  # a repeated tile names the same set
    ("1m: 111m 123m\nAnswer: 2m\nAnswer: 1m 4m 7p", M1_M4_P7),  # the last Answer: wins
    ("Answer: 1m 4m 7p\nsome trailing chatter", M1_M4_P7),  # only the answer's own line counts
    ("The winning tiles are\n1m 4m 7p", M1_M4_P7),  # no Answer: -> the last line
    ("Answer: 0m", frozenset(parse_tiles("5m"))),  # red five
    ("Answer: East, red dragon", frozenset(parse_tiles("1z 7z"))),
    ("Answer: 11h", frozenset(parse_tiles("1z"))),
    ("Answer: none", frozenset()),
    ("Answer: None.", frozenset()),
    ("Answer: no tiles", frozenset()),
    ("Answer: no winning tiles", frozenset()),
    ("Answer: nothing", frozenset()),
    ("Answer: {}", frozenset()),
    ("Answer: []", frozenset()),
    ("Answer: the empty set", frozenset()),
    ("Answer: \u2205", frozenset()),
    ("Answer: not tenpai", frozenset()),
]

# text -> None (no gradable answer)
STRICT = [
    "",
    "Answer:",
    "Answer: 1m 4m maybe 7p",  # a stray word
    "Answer: 1m or 4m",  # "or" is not a set
    "Answer: none 1m",  # contradiction
    "Answer: 8z",  # no such tile
    "Answer: 1m: 123m",  # a rationale line is not an answer
    "Answer: 14",  # digits without a suit
    "I do not know",
]


@pytest.mark.parametrize("text,expected", TOLERANT)
def test_tolerant_of_form(text, expected):
    assert extract_tiles(text) == expected


@pytest.mark.parametrize("text", STRICT)
def test_unreadable_is_none(text):
    assert extract_tiles(text) is None


@pytest.mark.parametrize("text", ["Answer: 1m 4m", "Answer: 1m 4m 7p 9p", "Answer: none", "Answer: 1m 4m 7s"])
def test_strict_about_content(text):
    # a missing, an extra or a wrong tile (7s vs 7p), or "none", is a different set
    got = extract_tiles(text)
    assert got is not None and got != M1_M4_P7
