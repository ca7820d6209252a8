"""Cross-tokenizer KD on the student's own samples: the teacher's tokens of the sampled text and the aligned pairs.

Off-policy, both tokenizers read the example's text (stratos/distill/token_alignment.py). On-policy there is no text
yet, only the student's sampled ids, so (the way TRL's GOLD trainer handles student rollouts):

  1. text      the sample's exact bytes, token by token (`vocab_bytes`: byte-level pieces, SentencePiece `▁` as
               a space, `<0xNN>` byte fallbacks), decoded as UTF-8 -> the sampled text; a trailing <eos> has no text
  2. offsets   each sampled token's character span in that text, from the byte positions; a token holding part of
               a character gets the whole character (as a fast tokenizer's offsets do), so no cut falls inside it
  3. teacher   the teacher's own prompt tokens (kept from the data row) + its tokenization of the sampled text
               (+ its <eos> when the sample ended), cut at the teacher's context
  4. pairs     `aligned_pairs` on both tokenizations, exactly as for a data row: the sampled tokens are the
               student's supervised tokens, so the pairs cover the sample's spans and its <eos>

The student's ids stay the sampled ones (never re-tokenized): they are what the student trains on, and a
non-canonical sample (one its tokenizer would not produce from the text) still gets correct offsets.
"""

from __future__ import annotations

import codecs
from typing import Optional

from stratos.distill.examples import IGNORE
from stratos.distill.token_alignment import Encoded, Offset, aligned_pairs, vocab_bytes


def char_spans(pieces: list[bytes]) -> tuple[str, list[Offset]]:
    """(text, per piece (start, end) characters) for byte pieces concatenated and decoded as UTF-8 (invalid bytes
    become U+FFFD). A piece that starts inside a character starts at that character; one that ends inside it ends
    after it."""
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out, offsets, n = [], [], 0  # n: characters emitted so far
    for piece in pieces:
        start = n  # the next character's index, also when the previous piece began it (its bytes are pending)
        for b in piece:
            ch = dec.decode(bytes([b]))
            out.append(ch)
            n += len(ch)
        end = n + (1 if dec.getstate()[0] else 0)  # pending bytes: the character they start
        offsets.append((start, end))
    tail = dec.decode(b"", final=True)
    return "".join(out) + tail, offsets


class RolloutAligner:
    """(student prompt ids, sampled ids, teacher prompt ids) -> (teacher ids, aligned pairs), or None when the sample
    has neither text the teacher can read nor an <eos> (empty, or only whitespace cut off by the length budget)."""

    def __init__(self, student_tokenizer, teacher_tokenizer, teacher_max_len: int) -> None:
        self.student, self.teacher = student_tokenizer, teacher_tokenizer
        self.bytes = vocab_bytes(student_tokenizer)
        self.teacher_max_len = int(teacher_max_len)
        self.eos = (student_tokenizer.eos_token_id, teacher_tokenizer.eos_token_id)
        self.special = set(student_tokenizer.all_special_ids)

    def _piece(self, token_id: int) -> bytes:
        known = self.bytes.get(token_id)
        if known is not None:
            return known
        if token_id in self.special:  # a special token inside a sample: no text
            return b""
        return self.student.decode([token_id]).encode("utf-8")

    def __call__(self, prompt: list[int], sample: list[int], teacher_prompt: list[int]
                 ) -> Optional[tuple[list[int], list[tuple[int, int]]]]:
        ended = bool(sample) and sample[-1] == self.eos[0]
        body = sample[:-1] if ended else sample
        text, spans = char_spans([self._piece(t) for t in body])
        if not text.strip() and not ended:
            return None
        s = Encoded(ids=list(prompt) + list(sample), offsets=[None] * len(prompt) + spans + ([None] if ended else []),
                    labels=[IGNORE] * len(prompt) + list(sample))
        enc = self.teacher(text, add_special_tokens=False, return_offsets_mapping=True)
        t_ids = list(teacher_prompt) + enc["input_ids"] + ([self.eos[1]] if ended else [])
        t_off = [None] * len(teacher_prompt) + [tuple(o) for o in enc["offset_mapping"]] + ([None] if ended else [])
        t_ids, t_off = t_ids[: self.teacher_max_len], t_off[: self.teacher_max_len]
        t = Encoded(ids=t_ids, offsets=t_off, labels=[IGNORE] * len(teacher_prompt) + t_ids[len(teacher_prompt):])
        pairs, _ = aligned_pairs(s, t, self.eos)
        return t_ids, pairs
