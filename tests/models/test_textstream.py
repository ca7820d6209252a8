"""Incremental detokenisation: stop strings across tokens, split UTF-8 characters, exact token bytes."""

from __future__ import annotations

from stratos.export.hf import load_tokenizer
from stratos.models.textstream import TextStream, token_bytes_fn


def _feed(tok, text: str, stop: list[str]) -> tuple[str, bool, str]:
    ts = TextStream(tok, stop)
    out, hit = "", False
    for t in tok(text, add_special_tokens=False)["input_ids"]:
        piece, hit = ts.push(t)
        out += piece
        if hit:
            break
    return out, hit, ts.finish() if not hit else ""


def test_no_stop_round_trips(tiny_export):
    tok = load_tokenizer(tiny_export["hf"])
    text = "Hand: 1m 2m 3m\nAnswer: 4p"
    out, hit, rest = _feed(tok, text, [])
    assert out + rest == text and not hit


def test_stop_string_spanning_tokens_is_cut(tiny_export):
    tok = load_tokenizer(tiny_export["hf"])
    out, hit, _ = _feed(tok, "Step 1: count the tiles.\nAnswer: 4p 5p", ["\nAns"])
    assert hit and out == "Step 1: count the tiles."


def test_held_back_prefix_is_released_at_the_end(tiny_export):
    tok = load_tokenizer(tiny_export["hf"])
    out, hit, rest = _feed(tok, "Answer: 4p\nA", ["\nAnswer"])  # ends with a prefix of the stop string
    assert not hit and out == "Answer: 4p" and rest == "\nA"


def test_split_utf8_character_is_emitted_whole(tiny_export):
    tok = load_tokenizer(tiny_export["hf"])
    ids = tok("🀄", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1  # byte-level: the 4-byte character spans several tokens
    ts = TextStream(tok)
    pieces = [ts.push(t)[0] for t in ids]
    assert pieces[:-1] == [""] * (len(ids) - 1) and pieces[-1] == "🀄"


def test_token_bytes_concatenate_to_the_text(tiny_export):
    tok = load_tokenizer(tiny_export["hf"])
    fn = token_bytes_fn(tok)
    text = "Hand: 1m 🀄 ünï\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert b"".join(bytes(fn(t)) for t in ids) == text.encode()
    assert bytes(fn(tok.eos_token_id)) == tok.eos_token.encode()
