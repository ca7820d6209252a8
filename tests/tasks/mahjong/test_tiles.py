import random
import unicodedata

import pytest
from mahjong.tile import TilesConverter

from stratos.tasks.mahjong.tiles import (
    NAMES,
    UNICODE,
    TileError,
    format_compact,
    format_spaced,
    format_tiles,
    format_unicode,
    parse_hand,
    parse_tile,
    parse_tiles,
    to_counts,
    to_kinds,
)


def _random_hands(n, seed=0):
    rng = random.Random(seed)
    wall = [k for k in range(34) for _ in range(4)]
    for _ in range(n):
        yield sorted(rng.sample(wall, 13))


def test_names_follow_the_library_order():
    assert NAMES[0] == "1m" and NAMES[8] == "9m" and NAMES[9] == "1p" and NAMES[18] == "1s"
    assert NAMES[27] == "1z" and NAMES[33] == "7z"
    # compact parsing agrees with the mahjong library's own converter on every kind
    for k, name in enumerate(NAMES):
        assert TilesConverter.one_line_string_to_34_array(name) == to_counts([k])


@pytest.mark.parametrize("notation", ["compact", "spaced", "unicode"])
def test_round_trip_every_notation(notation):
    for kinds in _random_hands(500):
        text = format_tiles(kinds, notation)
        assert parse_tiles(text) == kinds
        assert parse_hand(text) == to_counts(kinds)


def test_compact_matches_library_and_examples():
    assert format_compact([0, 1, 2, 12, 13, 14, 24, 25, 26, 27, 27]) == "123m456p789s11z"
    assert format_spaced([0, 1, 2, 27]) == "1m 2m 3m 1z"
    for kinds in _random_hands(200, seed=1):
        assert TilesConverter.one_line_string_to_34_array(format_compact(kinds)) == to_counts(kinds)


EXPECTED_UNICODE_NAMES = {
    "1m": "MAHJONG TILE ONE OF CHARACTERS",
    "9m": "MAHJONG TILE NINE OF CHARACTERS",
    "1p": "MAHJONG TILE ONE OF CIRCLES",
    "9p": "MAHJONG TILE NINE OF CIRCLES",
    "1s": "MAHJONG TILE ONE OF BAMBOOS",
    "9s": "MAHJONG TILE NINE OF BAMBOOS",
    "1z": "MAHJONG TILE EAST WIND",
    "2z": "MAHJONG TILE SOUTH WIND",
    "3z": "MAHJONG TILE WEST WIND",
    "4z": "MAHJONG TILE NORTH WIND",
    "5z": "MAHJONG TILE WHITE DRAGON",
    "6z": "MAHJONG TILE GREEN DRAGON",
    "7z": "MAHJONG TILE RED DRAGON",
}


def test_unicode_mapping_by_meaning():
    # dragons are mapped by meaning: Unicode lists Red (1F004), Green, White (1F006)
    assert UNICODE[NAMES.index("7z")] == "\U0001F004"
    assert UNICODE[NAMES.index("6z")] == "\U0001F005"
    assert UNICODE[NAMES.index("5z")] == "\U0001F006"
    assert UNICODE[0] == "\U0001F007" and UNICODE[NAMES.index("1s")] == "\U0001F010"
    assert UNICODE[NAMES.index("1p")] == "\U0001F019" and UNICODE[NAMES.index("9p")] == "\U0001F021"
    for name, uname in EXPECTED_UNICODE_NAMES.items():
        assert unicodedata.name(UNICODE[NAMES.index(name)]) == uname
    # every tile's Unicode name agrees with its number and suit
    numbers = "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()
    suits = {"m": "CHARACTERS", "p": "CIRCLES", "s": "BAMBOOS"}
    for k in range(27):
        assert unicodedata.name(UNICODE[k]) == f"MAHJONG TILE {numbers[k % 9]} OF {suits[NAMES[k][1]]}"
    assert sorted(ord(u) for u in UNICODE) == list(range(0x1F000, 0x1F022))


def test_mixed_notation_red_five_honor_letter_and_emoji_selector():
    assert parse_tiles("123m 4p\U0001F000") == [0, 1, 2, 12, 27]
    assert parse_tiles("0m 0p 0s") == [4, 13, 22]  # aka-dora red fives are fives
    assert parse_tiles("11h") == [27, 27]
    assert parse_tiles("\U0001F004\ufe0f\U0001F004") == [33, 33]
    assert parse_tile("\U0001F006") == NAMES.index("5z")
    assert format_unicode([33, 31]) == "\U0001F006\U0001F004"


@pytest.mark.parametrize("bad", ["8z", "0z", "m", "1x", "12", "1m,2m", "one"])
def test_bad_tiles_raise(bad):
    with pytest.raises(TileError):
        parse_tiles(bad)


def test_parse_hand_checks_size_and_copies():
    with pytest.raises(TileError, match="expected 13"):
        parse_hand("123m")
    with pytest.raises(TileError, match="more than 4"):
        parse_hand("11111m23456789p")
    assert to_kinds(parse_hand("1112345678999m")) == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8]
