"""Cross-tokenizer KD on the student's samples: the sampled text's offsets, the teacher's tokens and the pairs agree
with what the data path builds from the same text; pieces of one character, invalid bytes, non-canonical samples."""

from __future__ import annotations

import pytest

from stratos.distill.token_alignment import aligned_pairs, encode_example
from stratos.distill.xtok_rollouts import RolloutAligner, char_spans
from tests.distill.test_token_alignment import byte_level, sentencepiece  # noqa: F401  (module fixtures)


def test_char_spans_give_pieces_of_one_character_the_whole_character():
    emoji = "🀄".encode()  # 4 bytes
    text, spans = char_spans([b"on ", emoji[:1], emoji[1:3], emoji[3:] + b"!", b""])
    assert text == "on 🀄!"
    assert spans == [(0, 3), (3, 4), (3, 4), (3, 5), (5, 5)]
    text, spans = char_spans([b"\xff", b"ok", "é".encode()[:1]])  # invalid, then a character cut off at the end
    assert text == "\ufffdok\ufffd" and spans == [(0, 1), (1, 3), (3, 4)]


@pytest.mark.parametrize("target", ["wins on 3m and 6m", "the hand waits on 🀄 and ö: 3m", "東南西北 3m"])
def test_a_sample_equal_to_the_data_target_aligns_as_the_data_row_does(byte_level, sentencepiece, target):  # noqa: F811
    """Student byte-level BPE, teacher SentencePiece with byte fallback: sampling exactly the target's tokens gives
    the teacher ids and the pairs of the off-policy row of that text."""
    s = encode_example(byte_level, "question", target, 512)
    t = encode_example(sentencepiece, "question", target, 512)
    want, _ = aligned_pairs(s, t, (byte_level.eos_token_id, sentencepiece.eos_token_id))
    n_s = sum(1 for y in s.labels if y == -100)
    n_t = sum(1 for y in t.labels if y == -100)
    align = RolloutAligner(byte_level, sentencepiece, 512)
    t_ids, pairs = align(s.ids[:n_s], s.ids[n_s:], t.ids[:n_t])
    assert t_ids == t.ids and pairs == want and len(pairs) > 1


def test_a_non_canonical_sample_keeps_its_own_ids_and_still_aligns(byte_level, sentencepiece):  # noqa: F811
    """The student samples "hello" one character at a time (its tokenizer would merge them): the teacher reads the same
    text, the pairs start at text boundaries both sides share, and the <eos> pair comes last."""
    s = encode_example(byte_level, "question", "hello", 512)
    t = encode_example(sentencepiece, "question", "hello", 512)
    n_s = sum(1 for y in s.labels if y == -100)
    n_t = sum(1 for y in t.labels if y == -100)
    chars = byte_level.convert_tokens_to_ids(list("hello"))
    assert len(chars) > len(s.ids) - n_s - 1  # really not the merged tokens
    sample = chars + [byte_level.eos_token_id]
    t_ids, pairs = RolloutAligner(byte_level, sentencepiece, 512)(s.ids[:n_s], sample, t.ids[:n_t])
    assert t_ids == t.ids
    # teacher "▁" "he" "ll" "o" against student h e l l o: spans "he" | "ll" | "o", then <eos> (shifted rows)
    assert sentencepiece.convert_ids_to_tokens(t_ids[n_t:]) == ["\u2581", "he", "ll", "o", "</s>"]
    assert pairs == [(n_s - 1, n_t - 1), (n_s + 1, n_t + 1), (n_s + 3, n_t + 2), (n_s + 4, n_t + 3)]


def test_samples_without_text_and_the_teachers_context(byte_level, sentencepiece):  # noqa: F811
    align = RolloutAligner(byte_level, sentencepiece, 512)
    prompt, t_prompt = [byte_level.bos_token_id, 40], [sentencepiece.bos_token_id, 50, 51]
    eos_s, eos_t = byte_level.eos_token_id, sentencepiece.eos_token_id
    assert align(prompt, [eos_s], t_prompt) == (t_prompt + [eos_t], [(1, 2)])  # only <eos>: the <eos> pair
    assert align(prompt, [], t_prompt) is None  # nothing sampled, nothing to score
    ids = byte_level("wins on 3m", add_special_tokens=False)["input_ids"]
    t_ids, pairs = RolloutAligner(byte_level, sentencepiece, 6)(prompt, ids + [eos_s], t_prompt)
    assert len(t_ids) == 6 and all(t < 5 for _, t in pairs)  # cut at the teacher's context, pairs inside it
