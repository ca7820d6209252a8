"""Token alignment on hand-made cases: merges/splits, byte fallback, special tokens, unicode, shared vocabulary."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers
from transformers import PreTrainedTokenizerFast

from stratos.distill.token_alignment import (Encoded, aligned_pairs, align_offsets, cut_points, encode_example,
                                             shared_vocab, vocab_bytes)
from stratos.models.tokenizer import train_tokenizer

TEXT = ["1m 2m 3m 4p 5p 6s wins on 3m and 6m", "hello world", "the hand waits on 4p"] * 30


@pytest.fixture(scope="module")
def byte_level():
    """The project's byte-level BPE (GPT-2 alphabet), as a built student gets it."""
    return train_tokenizer(TEXT, 300)


@pytest.fixture(scope="module")
def sentencepiece():
    """A hand-made SentencePiece-style BPE (as Llama 2 / Mistral ship): `▁` for spaces, single characters,
    a few merges, and `<0xNN>` byte-fallback tokens in the vocabulary for every character it lacks."""
    pieces = ["<pad>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + list("\u2581abcdefghijklmnopqrstuvwxyz0123456789:")
    merges = [("\u2581", "w"), ("h", "e"), ("l", "l"), ("\u2581w", "a"), ("i", "t"), ("\u2581", "o"), ("\u2581o", "n")]
    vocab = {p: i for i, p in enumerate(pieces)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab, merges, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def test_merge_against_split_is_one_span():
    # "hello world": student ["hello", " world"], teacher ["hel", "lo", " wor", "ld"]
    student = [(0, 5), (5, 11)]
    teacher = [(0, 3), (3, 5), (5, 9), (9, 11)]
    spans = align_offsets(student, teacher)
    assert [(s.start, s.end, s.student, s.teacher, s.kind) for s in spans] == [
        (0, 5, (0,), (0, 1), "1:n"), (5, 11, (1,), (2, 3), "1:n")]
    # and the other way round, plus a crossing n:m span ("ab|c" vs "a|bc")
    assert [s.kind for s in align_offsets(teacher, student)] == ["n:1", "n:1"]
    assert [s.kind for s in align_offsets([(0, 2), (2, 3)], [(0, 1), (1, 3)])] == ["n:m"]


def test_pieces_of_one_character_never_end_a_span():
    # "wö!": byte pieces of "ö" both carry (1, 2); the other side keeps "ö!" whole
    student = [(0, 1), (1, 2), (1, 2), (2, 3)]
    teacher = [(0, 1), (1, 3)]
    assert cut_points(student) == {0, 1, 2, 3}
    spans = align_offsets(student, teacher)
    assert [(s.student, s.teacher) for s in spans] == [((0,), (0,)), ((1, 2, 3), (1,))]


def test_special_tokens_are_never_aligned_to_text():
    student = [None, (0, 2), (2, 4), None, None]  # <bos> .. <eos> <pad>
    teacher = [None, (0, 4), None]
    spans = align_offsets(student, teacher)
    assert [(s.student, s.teacher) for s in spans] == [((1, 2), (1,))]
    # zero-width tokens (a prepended space some tokenizers emit) count as no text either
    assert align_offsets([(0, 0), (0, 4)], [(0, 4)])[0].student == (1,)


@pytest.mark.parametrize("text", ["the hand waits on 4p", "wins on 🀄 and ö: 3m", "  two  spaces", "東南西北 3m"])
def test_real_tokenizers_cover_the_text_with_spans(byte_level, sentencepiece, text):
    s = encode_example(byte_level, "question", text, 512)
    t = encode_example(sentencepiece, "question", text, 512)
    for enc, tok in ((s, byte_level), (t, sentencepiece)):
        assert enc.offsets[0] is None and enc.offsets[-1] is None  # <bos>, <eos>
        assert enc.ids[0] == tok.bos_token_id and enc.ids[-1] == tok.eos_token_id
    spans = align_offsets(s.offsets, t.offsets)
    full = "question\n" + text
    assert spans[0].start <= len("question\n") - 1 and spans[-1].end == len(full)
    assert all(a.end == b.start for a, b in zip(spans, spans[1:]))  # contiguous, no gaps
    # every text token lies in exactly one span, and its characters inside it
    for side, enc in (("student", s), ("teacher", t)):
        inside = sorted(i for sp in spans for i in getattr(sp, side))
        text_tokens = [i for i, o in enumerate(enc.offsets) if o is not None and o[1] > o[0]]
        assert inside == text_tokens
        for sp in spans:
            assert all(sp.start <= enc.offsets[i][0] and enc.offsets[i][1] <= sp.end for i in getattr(sp, side))
    # every target span holds the same bytes on both sides (byte-fallback pieces included)
    sb, tb = vocab_bytes(byte_level), vocab_bytes(sentencepiece)
    for sp in spans:
        if sp.start >= len("question\n"):
            want = full[sp.start:sp.end].encode()
            assert b"".join(sb[s.ids[i]] for i in sp.student) == want
            # SentencePiece prepends "▁" to each separately tokenized piece: the target's first span has it
            phantom = b" " if sp.start == len("question\n") else b""
            assert b"".join(tb[t.ids[i]] for i in sp.teacher) == phantom + want


def test_byte_fallback_splits_a_character_the_byte_level_side_keeps_whole(byte_level, sentencepiece):
    t = encode_example(sentencepiece, "", "on 🀄", 64)
    s = encode_example(byte_level, "", "on 🀄", 64)
    assert [sentencepiece.convert_ids_to_tokens(i) for i in t.ids[-5:-1]] == ["<0xF0>", "<0x9F>", "<0x80>", "<0x84>"]
    last = align_offsets(s.offsets, t.offsets)[-1]
    assert last.teacher[-4:] == tuple(range(len(t.ids) - 5, len(t.ids) - 1))  # all 4 bytes in one span
    assert "🀄" in byte_level.decode([s.ids[i] for i in last.student])


def test_pairs_are_shifted_span_starts_on_supervised_text_plus_eos(byte_level):
    s = Encoded(ids=[1, 10, 11, 12, 13, 2], offsets=[None, (0, 2), (2, 3), (3, 5), (5, 6), None],
                labels=[-100, -100, -100, 12, 13, 2])  # prompt "ab\n", target "cd" "e"
    t = Encoded(ids=[7, 20, 21, 22, 8], offsets=[None, (0, 3), (3, 4), (4, 6), None],
                labels=[-100, -100, 21, 22, 8])  # target split "c" | "de"
    pairs, counts = aligned_pairs(s, t, eos=(2, 8))
    # spans: [0,3) prompt (skipped), [3,6) "cde": student 3 (+4), teacher 2 (+3); then EOS by role
    assert pairs == [(2, 1), (4, 3)]
    assert counts == {"supervised": 3, "aligned": 2, "n:m": 1, "eos": 1}


def test_identical_tokenizers_align_every_supervised_token_one_to_one(byte_level):
    enc = encode_example(byte_level, "the hand", "waits on 4p", 512)
    pairs, counts = aligned_pairs(enc, enc, eos=(byte_level.eos_token_id,) * 2)
    supervised = [i - 1 for i, y in enumerate(enc.labels) if y != -100]
    assert [s for s, _ in pairs] == supervised and all(s == t for s, t in pairs)
    assert counts["aligned"] == counts["supervised"] and set(counts) <= {"supervised", "aligned", "1:1", "eos"}
    # the documented exception: the later byte pieces of one character have no text boundary before them
    enc = encode_example(byte_level, "the hand", "waits on 🀄", 512)
    pairs, counts = aligned_pairs(enc, enc, eos=(byte_level.eos_token_id,) * 2)
    pieces = sum(1 for o in enc.offsets if o == enc.offsets[-2])  # the emoji's byte pieces share its offsets
    assert counts["supervised"] - counts["aligned"] == pieces - 1 and all(s == t for s, t in pairs)


def test_encode_example_gives_the_ids_the_training_examples_use(byte_level):
    from stratos.distill.examples import TextExample, tokenize

    for prompt in ("1m 2m 3m", ""):
        enc = encode_example(byte_level, prompt, "wins on 3m", 512)
        assert (enc.ids, enc.labels) == tuple(map(list, tokenize(byte_level, TextExample(prompt, "wins on 3m"), 512)))
        short = encode_example(byte_level, prompt, "wins on 3m", 4)
        assert len(short.ids) == len(short.offsets) == len(short.labels) == 4


def test_shared_vocab_matches_bytes_across_alphabets_and_specials_by_role(byte_level, sentencepiece):
    sv = shared_vocab(byte_level, sentencepiece)
    s_bytes, t_bytes = vocab_bytes(byte_level), vocab_bytes(sentencepiece)
    pairs = dict(zip(sv.student.tolist(), sv.teacher.tolist()))
    assert pairs[byte_level.eos_token_id] == sentencepiece.eos_token_id  # "<|eos|>" <-> "</s>" by role
    nl_s, nl_t = byte_level.convert_tokens_to_ids("Ċ"), sentencepiece.convert_tokens_to_ids("<0x0A>")
    assert pairs[nl_s] == nl_t  # byte-level "\n" <-> byte fallback <0x0A>
    for s, t in pairs.items():
        if s not in byte_level.all_special_ids:
            assert s_bytes[s] == t_bytes[t]
    assert len(set(sv.teacher.tolist())) == len(sv)  # a 1:1 map
    same = shared_vocab(byte_level, byte_level)
    assert len(same) == len(byte_level)  # every token, the specials by role
