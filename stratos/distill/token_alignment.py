r"""Align two tokenizations of the same text, for logit KD between different vocabularies.

A teacher and a student with different tokenizers cut the same text into different tokens, so
"position t" means different things on the two sides and their next-token distributions live over
different vocabularies. Cross-tokenizer KD (stratos/distill/cross_tokenizer_loss.py) needs two things
from here, both pure functions of the tokenizers and the text:

1. **Spans** (`align_offsets`, `aligned_pairs`). Each side's character offsets (`offset_mapping` of a
   fast tokenizer) give its *cut points*: the character positions where one token ends and the next
   begins. Where both sides cut, their histories cover exactly the same text. Between consecutive
   common cuts lies a span: one token on each side (1:1), or a merge on one side against a split on
   the other (1:n, n:1, n:m). For every span both models were conditioned on the same text when they
   predicted the span's *first* token, so those two distributions are compared: the student's at the
   position before its first token of the span, the teacher's at the position before its own first
   token. Positions inside a span (the student's second token of a split, say) have no teacher
   counterpart conditioned on the same text: they get CE only.

   Why character offsets rather than decoding tokens one by one (TRL GOLD walks byte offsets): offsets
   come from the tokenizer itself, need no decoding, and are exact for merges, splits and byte-fallback
   tokens alike. A byte-fallback or byte-level token may hold part of a UTF-8 character; every piece of
   the character then carries the character's offsets, so no cut falls inside it (the cut comes after
   the last piece: "clean" cuts only, see `cut_points`).

   Special tokens (BOS, EOS, pad) have no text and are never aligned to text. The end of the sequence
   is aligned by role instead: the position before each side's EOS predicts "the text ends here".

2. **The shared vocabulary** (`shared_vocab`): teacher/student id pairs of tokens with the same bytes
   (byte-level BPE pieces mapped through GPT-2's byte alphabet, SentencePiece `▁` as a space and
   `<0xNN>` byte-fallback tokens as their byte), plus special tokens matched by role (EOS <-> EOS).
   On these ids the two distributions can be compared entry by entry.

Coordinates: token indices are positions in the full sequence (`<bos> prompt target <eos>`, as
stratos/distill/examples.py tokenizes it); `aligned_pairs` returns *shifted* positions (the row of the
logits that predicts the token: index - 1), the coordinates of the loss.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from stratos.models.textstream import token_bytes_fn

Offset = Optional[tuple[int, int]]  # (start, end) characters of the text; None = special token (no text)
BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")
ROLES = ("eos_token_id", "bos_token_id", "pad_token_id", "unk_token_id")


# ----------------------------------------------------------------------------- spans
def cut_points(offsets: Sequence[Offset]) -> set[int]:
    """Character positions where this tokenization cuts cleanly: a text token ends and the next text token
    starts at or after that point. Pieces of one character share its offsets, so no cut falls inside it."""
    text = [o for o in offsets if o is not None and o[1] > o[0]]
    cuts = {text[0][0]} if text else set()
    for (_, end), nxt in zip(text, text[1:] + [None]):
        if nxt is None or nxt[0] >= end:
            cuts.add(end)
    return cuts


@dataclass(frozen=True)
class Span:
    """Text [start, end) and the token indices of each side that lie in it (ascending)."""

    start: int
    end: int
    student: tuple[int, ...]
    teacher: tuple[int, ...]

    @property
    def kind(self) -> str:
        """"1:1", "1:n" (the teacher splits what the student keeps whole), "n:1" or "n:m"."""
        s, t = len(self.student), len(self.teacher)
        return f"{'1' if s == 1 else 'n'}:{'1' if t == 1 else ('n' if s == 1 else 'm')}" if s and t else "none"


def align_offsets(student: Sequence[Offset], teacher: Sequence[Offset]) -> list[Span]:
    """Spans between the cut points both sides share, each with its tokens on both sides.

    student, teacher: per-token offsets (None or zero-width = no text: specials, never in a span).
    A token belongs to the span holding its start. Spans with tokens on one side only (text the other
    tokenizer dropped, e.g. by normalisation) are returned too; callers skip them.
    """
    common = sorted(cut_points(student) & cut_points(teacher))
    if len(common) < 2:
        return []
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for side, offsets in ((0, student), (1, teacher)):
        for i, o in enumerate(offsets):
            if o is None or o[1] <= o[0] or o[0] < common[0] or o[0] >= common[-1]:
                continue
            g = bisect.bisect_right(common, o[0]) - 1
            groups.setdefault(g, ([], []))[side].append(i)
    return [Span(common[g], common[g + 1], tuple(s), tuple(t)) for g, (s, t) in sorted(groups.items())]


@dataclass
class Encoded:
    """One example as a tokenizer sees it: ids, offsets into `prompt + "\n" + target` (None for
    specials) and labels (-100 on the prompt), exactly as stratos/distill/examples.py builds them."""

    ids: list[int]
    offsets: list[Offset]
    labels: list[int]


def encode_example(tokenizer, prompt: str, target: str, max_len: int) -> Encoded:
    """`<bos> prompt \n target <eos>` (or `<bos> target <eos>` without a prompt) with character offsets.

    The ids equal examples.tokenize's: the prompt (with its newline) and the target are tokenized apart,
    so both sides always cut at the prompt/target boundary.
    """
    head = prompt + "\n" if prompt else ""
    tgt = tokenizer(target, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = [tokenizer.bos_token_id], [None]
    if prompt:  # encode_prompt's ids: <bos> + the prompt with its newline
        p = tokenizer(head, add_special_tokens=False, return_offsets_mapping=True)
        ids += p["input_ids"]
        offsets += [tuple(o) for o in p["offset_mapping"]]
    n_prompt = len(ids)
    ids = ids + tgt["input_ids"] + [tokenizer.eos_token_id]
    offsets += [(a + len(head), b + len(head)) for a, b in tgt["offset_mapping"]] + [None]
    labels = [-100] * n_prompt + ids[n_prompt:]  # without a prompt n_prompt = 1: loss after <bos>
    return Encoded(ids[:max_len], offsets[:max_len], labels[:max_len])


def aligned_pairs(student: Encoded, teacher: Encoded, eos: tuple[int, int]) -> tuple[list[tuple[int, int]], dict]:
    """(pairs, counts): shifted positions (student row, teacher row) whose next-token distributions are
    compared, for every span whose student tokens are supervised, plus the EOS pair when both sequences
    end in EOS. counts: supervised student tokens, those first in an aligned span (`aligned`), and the
    spans by kind. eos = (student EOS id, teacher EOS id)."""
    pairs: list[tuple[int, int]] = []
    kinds: dict[str, int] = {}
    for span in align_offsets(student.offsets, teacher.offsets):
        if not span.student or not span.teacher:
            continue
        s0, t0 = span.student[0], span.teacher[0]
        if s0 < 1 or t0 < 1 or student.labels[s0] == -100:
            continue  # prompt text (no loss there), or a first token with no position before it
        pairs.append((s0 - 1, t0 - 1))
        kinds[span.kind] = kinds.get(span.kind, 0) + 1
    s_end, t_end = len(student.ids) - 1, len(teacher.ids) - 1
    if (s_end >= 1 and t_end >= 1 and student.ids[s_end] == eos[0] and teacher.ids[t_end] == eos[1]
            and student.labels[s_end] != -100):
        pairs.append((s_end - 1, t_end - 1))
        kinds["eos"] = kinds.get("eos", 0) + 1
    supervised = sum(1 for x in student.labels if x != -100)
    return pairs, {"supervised": supervised, "aligned": len(pairs), **kinds}


# ----------------------------------------------------------------------------- shared vocabulary
def vocab_bytes(tokenizer) -> dict[int, bytes]:
    """id -> exact bytes of every non-special token whose bytes are known: byte-level BPE pieces through
    GPT-2's byte alphabet, `<0xNN>` byte-fallback tokens as that byte, otherwise the piece with `▁` as a
    space (SentencePiece). Pieces that decode to U+FFFD (unknown bytes) are left out."""
    special = set(tokenizer.all_special_ids)
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    byte_level = "ByteLevel" in repr(decoder)
    to_bytes = token_bytes_fn(tokenizer)
    out: dict[int, bytes] = {}
    for piece, i in tokenizer.get_vocab().items():
        if i in special:
            continue
        if byte_level:
            b = bytes(to_bytes(i))
        elif m := BYTE_FALLBACK.fullmatch(piece):
            b = bytes([int(m.group(1), 16)])
        else:
            b = piece.replace("\u2581", " ").encode("utf-8")
        if b and "\ufffd".encode() not in b:
            out[i] = b
    return out


@dataclass
class SharedVocab:
    """Token ids present in both vocabularies: teacher[i] and student[i] are the same token."""

    teacher: torch.Tensor  # (M,) long, ascending by student id
    student: torch.Tensor  # (M,) long
    student_size: int  # V_s (embedding rows of the student's head)
    teacher_size: int  # V_t
    student_rest: torch.Tensor = field(init=False)  # (V_s - M,) ids in no pair, ascending
    teacher_rest: torch.Tensor = field(init=False)  # (V_t - M,)
    student_shared: torch.Tensor = field(init=False)  # (V_s,) bool: the student id has a teacher counterpart

    def __post_init__(self) -> None:
        self.student_rest = _complement(self.student, self.student_size)
        self.teacher_rest = _complement(self.teacher, self.teacher_size)
        self.student_shared = torch.zeros(self.student_size, dtype=torch.bool)
        self.student_shared[self.student] = True

    def __len__(self) -> int:
        return int(self.student.numel())

    def to(self, device) -> "SharedVocab":
        """The same map with its index tensors on `device` (no copy when already there)."""
        if self.student.device == torch.device(device):
            return self
        out = SharedVocab.__new__(SharedVocab)
        out.__dict__.update({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})
        return out


def _complement(ids: torch.Tensor, size: int) -> torch.Tensor:
    keep = torch.ones(size, dtype=torch.bool)
    keep[ids] = False
    return keep.nonzero().squeeze(1)


def shared_vocab(student_tok, teacher_tok, student_size: int | None = None,
                 teacher_size: int | None = None) -> SharedVocab:
    """Pairs of ids with identical bytes, plus special tokens by role (EOS <-> EOS ...). Sizes default to the
    tokenizers' lengths; pass the heads' row counts when they are larger (padded embeddings)."""
    s_size = int(student_size or len(student_tok))
    t_size = int(teacher_size or len(teacher_tok))
    by_bytes: dict[bytes, int] = {}
    for i, b in sorted(vocab_bytes(teacher_tok).items()):
        by_bytes.setdefault(b, i)  # the first id of duplicated bytes
    pairs: dict[int, int] = {}  # student id -> teacher id
    for i, b in vocab_bytes(student_tok).items():
        if b in by_bytes and i < s_size and by_bytes[b] < t_size:
            pairs.setdefault(i, by_bytes[b])
    for role in ROLES:
        s, t = getattr(student_tok, role, None), getattr(teacher_tok, role, None)
        if s is not None and t is not None and s < s_size and t < t_size:
            pairs[s] = t
    used_t: set[int] = set()
    s_ids, t_ids = [], []
    for s in sorted(pairs):  # one student id per teacher id (a 1:1 map)
        if pairs[s] not in used_t:
            used_t.add(pairs[s])
            s_ids.append(s)
            t_ids.append(pairs[s])
    return SharedVocab(torch.tensor(t_ids, dtype=torch.long), torch.tensor(s_ids, dtype=torch.long), s_size, t_size)


def supports_offsets(tokenizer) -> bool:
    """True for a fast (Rust `tokenizers`) tokenizer: only those return offset mappings."""
    return bool(getattr(tokenizer, "is_fast", False))
