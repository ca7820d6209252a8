"""Turn task rows + a strategy decision into tokenized training examples.

Format of every supervised example (the evaluate stage and the exported model see the same):
    <bos> question \n target <eos>          loss on `target <eos>` only (labels -100 elsewhere)
Corpus examples (knowledge injection) are plain LM text with the loss on every token, cut into
token windows as long as the 90th percentile of supervised lengths (shorter than the longest row of
almost every batch, so corpus rows add next to no padding).

What `target` is:
  labels_only              "Answer: ..." (the verified label, nothing else)
  alignment / sequence     the teacher's rationale, kept only if the task's verifier accepts it
                           (rejection sampling; counts recorded)
  alignment / logit|hidden the verified rationale; the teacher's distributions add the KD term
  alignment / cross_tokenizer  the same, and each item also carries the teacher's own tokens of the same text
                           and the aligned (student row, teacher row) pairs (stratos/distill/token_alignment.py)
  injection                reverse synthesis: rationale built from the verified answer (task engine),
                           or teacher-written given question + answer and verified
`strategy.target=answer` trains on the answer line alone (shorter; no chain of thought).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec
import torch

from stratos.tasks.base import NO_STAGE, Task, stage_of
from stratos.distill.blackbox_kd import FILL
from stratos.distill.rejection import sequence_distillation_rows
from stratos.distill.token_alignment import aligned_pairs, encode_example
from stratos.errors import UserError
from stratos.models.generate import encode_prompt

log = logging.getLogger("stratos")
IGNORE = -100


@dataclass
class TextExample:
    prompt: str  # "" for corpus text
    target: str
    teacher_logprobs: Any = None  # black-box teacher: (tokens, top) of its answer, as the server sent them
    teacher_topk: Any = None  # blackbox_kd.TeacherTopK: the target as the teacher's ids + its top-k rows
    teacher: int = -1  # several teachers: the index of the row's own teacher (stratos/distill/routing.py)
    stage: int = NO_STAGE  # the row's curriculum stage (stratos/distill/curriculum.py)


def supervised_texts(source, task: Task, rows: list[dict], teacher, rules_in_prompt: bool, verify: bool = True,
                     n_samples: int = 1) -> tuple[list[TextExample], dict]:
    """(examples, stats) whose targets come from `source` (a recipe.TextSource: verified | teacher | answer).

    `verified` targets are the rationales the data stage wrote into the rows (the task's own
    `rationale(row)` only for rows that carry none, e.g. user data without solutions).
    """
    if source == "answer":
        return [TextExample(r["question"], task.answer_line(r), stage=stage_of(r)) for r in rows], \
            {"kept": len(rows), "rejected": 0}
    if source == "teacher":
        kept, stats = sequence_distillation_rows(teacher, task, rows, verify=verify, n_samples=n_samples,
                                                 rules_in_prompt=rules_in_prompt)
        return [TextExample(r["question"], r["rationale"].strip(), r.get("teacher_logprobs"), stage=stage_of(r))
                for r in kept], stats
    # the verified rationale built backwards from the known answer, as the data stage wrote it
    return [TextExample(r["question"], written_rationale(task, r), stage=stage_of(r)) for r in rows], \
        {"kept": len(rows), "rejected": 0}


def written_rationale(task: Task, row: dict) -> str:
    """The row's verified rationale as the data stage wrote it; the task rebuilds it only when absent."""
    return row.get("rationale") or task.rationale(row)


def corpus_texts(task: Task, extra_paths: list[str]) -> list[TextExample]:
    """Domain corpus documents: the task's rules text + user documents (any fsspec path or glob)."""
    texts = [task.corpus()]
    for p in extra_paths:
        files = fsspec.open_files(p, "r", encoding="utf-8")
        if not files:
            raise UserError(f"invalid value for 'strategy.injection.corpus_paths': {p!r} matches no file "
                            f"(allowed: local paths, globs or fsspec URLs of UTF-8 text files)")
        for f in files:
            with f as fh:
                texts.append(fh.read())
    return [TextExample("", t.strip()) for t in texts if t.strip()]


def corpus_windows(tokenizer, docs: list[TextExample], window: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) LM windows of at most `window` tokens: <bos> + the next window-1 tokens of
    each document (+ <eos> at its end), loss on all of them. Documents are cut at paragraph breaks
    where one falls in the second half of a window, otherwise mid-text (as HF's run_clm does)."""
    step = max(1, window - 1)
    out = []
    for doc in docs:
        paras = [p.strip() for p in doc.target.split("\n\n") if p.strip()]
        ids: list[int] = []
        breaks: set[int] = set()  # token offsets where a paragraph starts
        for i, p in enumerate(paras):
            breaks.add(len(ids))
            ids += tokenizer(("\n\n" if i else "") + p, add_special_tokens=False)["input_ids"]
        ids.append(tokenizer.eos_token_id)
        start = 0
        while start < len(ids):
            end = min(len(ids), start + step)
            if end < len(ids):
                cut = max((b for b in breaks if start + max(1, step // 2) <= b < end), default=end)
                end = cut
            chunk = [tokenizer.bos_token_id] + ids[start:end]
            out.append((chunk, [IGNORE] + chunk[1:]))
            start = end
    return out


def tokenize(tokenizer, ex: TextExample, max_len: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one example, truncated to `max_len`. A target that came with the
    teacher's own token ids (black-box top-k KD) keeps them: its top-k rows are aligned to those."""
    body = ex.teacher_topk.target_ids if ex.teacher_topk is not None else \
        tokenizer(ex.target, add_special_tokens=False)["input_ids"]
    tgt = body + [tokenizer.eos_token_id]
    if ex.prompt:
        prompt = encode_prompt(tokenizer, ex.prompt)
        ids, labels = prompt + tgt, [IGNORE] * len(prompt) + tgt
    else:
        ids = [tokenizer.bos_token_id] + tgt
        labels = [IGNORE] + tgt
    return ids[:max_len], labels[:max_len]


class Item(NamedTuple):
    """One training example. `is_corpus` marks domain-corpus LM text (its loss is weighted apart);
    `index` is the position in the dataset (set by :class:`WithIndex`, -1 otherwise)."""

    input_ids: list[int]
    labels: list[int]
    is_corpus: bool = False
    index: int = -1
    topk: Any = None  # (ids (L, k), logprobs (L, k), tail (L,)); row p = the teacher at position p
    xtok: Any = None  # cross-tokenizer KD: (teacher input ids (L_t,), aligned (student row, teacher row) pairs,
    #                   the teacher's prompt tokens: <bos> + prompt)
    teacher: int = -1  # several teachers: the row's own teacher (index into RoutedTeacher.ids); -1 = none
    stage: int = NO_STAGE  # curriculum stage of the row (stratos/distill/curriculum.py); corpus windows have none


def topk_rows(teacher: Any, n_prompt: int, length: int):
    """Top-k rows of a black-box teacher laid out like the sequence: row p predicts token p + 1.
    Target token j sits at n_prompt + j, so its row is n_prompt + j - 1; the final <eos> row and
    the prompt rows stay empty (collate fills supervised empty rows with a one-hot at the label)."""
    n, k = teacher.ids.shape
    ids = torch.zeros(length, k, dtype=torch.long)
    lp = torch.full((length, k), float("nan"))  # nan marks "no teacher row"
    tail = torch.full((length,), float("nan"))
    rows = slice(n_prompt - 1, min(length, n_prompt - 1 + n))
    m = rows.stop - rows.start
    ids[rows], lp[rows], tail[rows] = teacher.ids[:m], teacher.logprobs[:m], teacher.tail[:m]
    return ids, lp, tail


class ExampleDataset(torch.utils.data.Dataset):
    """Supervised examples, plus corpus windows making up `corpus_weight` of the examples.

    Mixed objective, not continued pre-training then SFT: corpus LM and SFT share every batch and
    the module weights them as loss shares, (1 - w) * SFT per-token mean + w * corpus per-token mean
    (stratos/distill/module.py). A separate pre-training phase would spend steps the SFT needs on a
    CPU budget and lets the later SFT erode what the corpus taught. The (small) corpus is repeated
    so that about `corpus_weight` of the rows are corpus too: every batch then holds some.
    """

    def __init__(self, tokenizer, supervised: list[TextExample], corpus: list[TextExample], corpus_weight: float,
                 max_len: int, seed: int, corpus_window: int = 0, teacher_tokenizer=None,
                 teacher_max_len: int = 0) -> None:
        items = []
        self.xtok_counts: dict[str, int] = {}  # cross-tokenizer KD: supervised / aligned tokens, spans by kind
        for e in supervised:
            if teacher_tokenizer is not None:  # the teacher reads the same text in its own tokens
                items.append(self._cross_item(tokenizer, teacher_tokenizer, e, max_len, teacher_max_len or max_len))
                continue
            ids, labels = tokenize(tokenizer, e, max_len)
            top = None
            if e.teacher_topk is not None:
                n_prompt = sum(1 for x in labels if x == IGNORE)
                top = topk_rows(e.teacher_topk, n_prompt, len(ids))
            items.append(Item(ids, labels, topk=top, teacher=e.teacher, stage=e.stage))
        self.topk_k = next((int(x.topk[0].shape[1]) for x in items if x.topk is not None), 0)
        if corpus and corpus_weight > 0:
            # windows at the 90th percentile of SFT lengths: a batch's longest SFT row (about its 98th
            # percentile at batch 64) is longer, so corpus rows add next to no padding
            window = min(max_len, corpus_window or _percentile([len(x.input_ids) for x in items], 0.9, max_len))
            cor = [Item(ids, labels, True) for ids, labels in corpus_windows(tokenizer, corpus, max(window, 8))]
            n_corpus = int(round(len(items) * corpus_weight / (1 - corpus_weight)))
            rng = random.Random(seed)
            order = []  # whole passes over the windows, each in a fresh order: every window equally often
            while len(order) < n_corpus:
                order += rng.sample(range(len(cor)), len(cor))
            items += [cor[j] for j in order[:n_corpus]]
        self.items = items

    def _cross_item(self, tokenizer, teacher_tokenizer, e: TextExample, max_len: int, teacher_max_len: int) -> Item:
        s = encode_example(tokenizer, e.prompt, e.target, max_len)
        t = encode_example(teacher_tokenizer, e.prompt, e.target, teacher_max_len)
        pairs, counts = aligned_pairs(s, t, (tokenizer.eos_token_id, teacher_tokenizer.eos_token_id))
        for k, v in counts.items():
            self.xtok_counts[k] = self.xtok_counts.get(k, 0) + v
        t_prompt = sum(1 for x in t.labels if x == IGNORE)  # <bos> + the prompt with its newline
        return Item(s.ids, s.labels, xtok=(t.ids, pairs, t_prompt), stage=e.stage)

    @classmethod
    def from_items(cls, items: list[tuple[list[int], list[int]]]) -> "ExampleDataset":
        """Already-tokenized (input_ids, labels) pairs (benchmarks, other front ends)."""
        ds = cls.__new__(cls)
        ds.items = [Item(list(ids), list(labels)) for ids, labels in items]
        ds.topk_k = 0
        ds.xtok_counts = {}
        return ds

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

    @property
    def lengths(self) -> list[int]:
        return [len(x.input_ids) for x in self.items]

    @property
    def stages(self) -> list[int]:
        """Per item, its curriculum stage (NO_STAGE for corpus windows and untagged rows)."""
        return [x.stage for x in self.items]

    @property
    def max_len(self) -> int:
        return max(self.lengths, default=0)

    @property
    def n_corpus(self) -> int:
        return sum(x.is_corpus for x in self.items)


def _percentile(values: list[int], q: float, default: int) -> int:
    return sorted(values)[int(q * (len(values) - 1))] if values else default


class WithIndex(torch.utils.data.Dataset):
    """Items that carry their dataset index: KD from the offline top-k store looks rows up by it."""

    def __init__(self, dataset: ExampleDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Item:
        return Item(*self.dataset[i])._replace(index=i)

    @property
    def lengths(self) -> list[int]:
        return self.dataset.lengths

    @property
    def stages(self) -> list[int]:
        return self.dataset.stages


def collate(pad_id: int, topk_k: int = 0):
    """Right-pad a batch of :class:`Item` (or (input_ids, labels) pairs): input_ids (B, T),
    attention_mask (B, T), labels (B, T) with -100 on padding, is_corpus (B,) bool, plus index (B,)
    when the items carry their dataset index (see :class:`WithIndex`), teacher_index (B,) when rows have
    their own teachers (multi-teacher), and with `topk_k` > 0 the
    black-box teacher's rows topk_ids / topk_logprobs (B, T, k), topk_tail (B, T)."""

    def fn(batch: list[tuple]) -> dict[str, torch.Tensor]:
        items = [Item(*item) for item in batch]
        width = max(len(item.input_ids) for item in items)
        input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for r, item in enumerate(items):
            n = len(item.input_ids)
            input_ids[r, :n] = torch.tensor(item.input_ids)
            labels[r, : len(item.labels)] = torch.tensor(item.labels)
            mask[r, :n] = 1
        out = {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
               "is_corpus": torch.tensor([item.is_corpus for item in items], dtype=torch.bool)}
        if all(item.index >= 0 for item in items):
            out["index"] = torch.tensor([item.index for item in items], dtype=torch.long)
        if topk_k > 0:
            out.update(collate_topk([item.topk for item in items], labels, topk_k))
        if any(item.xtok is not None for item in items):
            out.update(_collate_xtok(items))
        if any(item.teacher >= 0 for item in items):  # several teachers: (B,) each row's own, -1 = none
            out["teacher_index"] = torch.tensor([item.teacher for item in items], dtype=torch.long)
        return out

    return fn


def _collate_xtok(items: list[Item]) -> dict[str, torch.Tensor]:
    """Cross-tokenizer KD: teacher_input_ids / teacher_attention_mask (B, T_t), right-padded with id 0 under a
    zero mask, xtok_pairs (B, P, 2): per row its aligned (student row, teacher row) pairs in shifted
    coordinates (the logits row predicting the token), -1 on padding pairs, and teacher_prompt_len (B,): the
    teacher's prompt tokens per row (on-policy KD keeps them and re-tokenizes the student's sample after them)."""
    t_ids = [list(item.xtok[0]) if item.xtok is not None else [0] for item in items]
    pairs = [list(item.xtok[1]) if item.xtok is not None else [] for item in items]
    t_prompt = [int(item.xtok[2]) if item.xtok is not None else 0 for item in items]
    return xtok_tensors(t_ids, pairs, t_prompt)


def xtok_tensors(t_ids: list[list[int]], pairs: list[list], t_prompt: list[int]) -> dict[str, torch.Tensor]:
    """The cross-tokenizer batch keys from per-row lists (see _collate_xtok)."""
    B, width, p = len(t_ids), max(len(x) for x in t_ids), max(1, max(len(x) for x in pairs))
    ids = torch.zeros(B, width, dtype=torch.long)
    mask = torch.zeros(B, width, dtype=torch.long)
    out = torch.full((B, p, 2), -1, dtype=torch.long)
    for r, (x, pr) in enumerate(zip(t_ids, pairs)):
        ids[r, : len(x)] = torch.tensor(x)
        mask[r, : len(x)] = 1
        if pr:
            out[r, : len(pr)] = torch.tensor(pr)
    return {"teacher_input_ids": ids, "teacher_attention_mask": mask, "xtok_pairs": out,
            "teacher_prompt_len": torch.tensor(t_prompt, dtype=torch.long)}


def collate_topk(topks: list, labels: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """(B, T, k) teacher rows from each row's (ids (L, k), logprobs (L, k), tail (L,)) or None; a supervised row
    without one (None, or a NaN tail) gets a one-hot teacher at its label (the bucketed KL is then the CE of
    that token), so every row the loss reads is a distribution. The rollouts' rows are built here too
    (stratos/distill/served_scores.py)."""
    B, T = labels.shape
    ids = torch.zeros(B, T, k, dtype=torch.long)
    lp = torch.full((B, T, k), float("nan"))
    tail = torch.full((B, T), float("nan"))
    for r, top in enumerate(topks):
        if top is not None:
            n = top[0].shape[0]
            ids[r, :n], lp[r, :n], tail[r, :n] = top
    nxt = torch.cat([labels[:, 1:], torch.full((B, 1), IGNORE)], 1)  # (B, T): the token row p predicts
    empty = torch.isnan(tail) & (nxt != IGNORE)
    y = nxt[empty]  # (m,)
    filler = torch.arange(k - 1).expand(len(y), k - 1)  # ids 0..k-2, those >= y moved up one: distinct, never y
    ids[empty] = torch.cat([y[:, None], filler + (filler >= y[:, None]).long()], 1)
    lp[empty] = torch.cat([torch.zeros(len(y), 1), torch.full((len(y), k - 1), FILL)], 1)
    tail[empty] = -float("inf")
    # rows no loss reads (prompt, padding): all mass in the tail, a valid (unused) distribution
    return {"topk_ids": ids, "topk_logprobs": torch.nan_to_num(lp, nan=FILL),
            "topk_tail": torch.nan_to_num(tail, nan=0.0)}
