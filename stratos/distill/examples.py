"""Turn task rows + a strategy decision into tokenized training examples.

Format of every supervised example (the evaluate stage and the exported model see the same):
    <bos> question \n target <eos>          loss on `target <eos>` only (labels -100 elsewhere)
Corpus examples (knowledge injection) are plain LM text with the loss on every token.

What `target` is:
  labels_only              "Answer: ..." (the verified label, nothing else)
  alignment / sequence     the teacher's rationale, kept only if the task's verifier accepts it
                           (rejection sampling; counts recorded)
  alignment / logit|hidden the verified rationale; the teacher's distributions add the KD term
  injection                reverse synthesis: rationale built from the verified answer (task engine),
                           or teacher-written given question + answer and verified
`strategy.target=answer` trains on the answer line alone (shorter; no chain of thought).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import fsspec
import torch

from stratos.data.task import Task
from stratos.distill.rejection import sequence_distillation_rows
from stratos.distill.strategy import Decision
from stratos.models.generate import encode_prompt

log = logging.getLogger("stratos")
IGNORE = -100


@dataclass
class TextExample:
    prompt: str  # "" for corpus text
    target: str


def supervised_texts(decision: Decision, task: Task, rows: list[dict], teacher, target: str,
                     rules_in_prompt: bool, verify: bool = True, n_samples: int = 1) -> tuple[list[TextExample], dict]:
    """(examples, stats) for the decided strategy."""
    if decision.mode == "labels" or target == "answer":
        return [TextExample(r["question"], task.answer_line(r)) for r in rows], {"kept": len(rows), "rejected": 0}
    if decision.mode == "sequence":
        kept, stats = sequence_distillation_rows(teacher, task, rows, verify=verify, n_samples=n_samples,
                                                 rules_in_prompt=rules_in_prompt)
        return [TextExample(r["question"], r["rationale"].strip()) for r in kept], stats
    # logit / hidden / injection: the verified rationale built backwards from the known answer
    return [TextExample(r["question"], task.rationale(r)) for r in rows], {"kept": len(rows), "rejected": 0}


def corpus_texts(task: Task, extra_paths: list[str], chunk_chars: int = 400) -> list[TextExample]:
    """Domain corpus (task rules + user documents via fsspec), cut into LM-sized chunks."""
    texts = [task.corpus()]
    for p in extra_paths:
        for f in fsspec.open_files(p, "r", encoding="utf-8"):
            with f as fh:
                texts.append(fh.read())
    chunks = []
    for t in texts:
        paras = [p.strip() for p in t.split("\n\n") if p.strip()]
        buf = ""
        for p in paras:
            if buf and len(buf) + len(p) > chunk_chars:
                chunks.append(TextExample("", buf))
                buf = ""
            buf = f"{buf}\n\n{p}" if buf else p
        if buf:
            chunks.append(TextExample("", buf))
    return chunks


def tokenize(tokenizer, ex: TextExample, max_len: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one example, truncated to `max_len`."""
    tgt = tokenizer(ex.target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if ex.prompt:
        prompt = encode_prompt(tokenizer, ex.prompt)
        ids, labels = prompt + tgt, [IGNORE] * len(prompt) + tgt
    else:
        ids = [tokenizer.bos_token_id] + tgt
        labels = [IGNORE] + tgt
    return ids[:max_len], labels[:max_len]


class ExampleDataset(torch.utils.data.Dataset):
    """Supervised examples, plus corpus examples mixed in at `corpus_weight` of the data."""

    def __init__(self, tokenizer, supervised: list[TextExample], corpus: list[TextExample], corpus_weight: float,
                 max_len: int, seed: int) -> None:
        items = [tokenize(tokenizer, e, max_len) for e in supervised]
        if corpus and corpus_weight > 0:
            # mixed objective: corpus LM and SFT share batches. Repeat the (small) corpus so it is
            # `corpus_weight` of all examples; a separate continued-pretraining phase would spend
            # steps the SFT needs on a CPU budget and invites forgetting of the rules afterwards.
            n_corpus = int(round(len(items) * corpus_weight / (1 - corpus_weight)))
            rng = random.Random(seed)
            cor = [tokenize(tokenizer, e, max_len) for e in corpus]
            items += [cor[rng.randrange(len(cor))] for _ in range(n_corpus)]
        self.items = items

    @classmethod
    def from_items(cls, items: list[tuple[list[int], list[int]]]) -> "ExampleDataset":
        """Already-tokenized (input_ids, labels) pairs (benchmarks, other front ends)."""
        ds = cls.__new__(cls)
        ds.items = [(list(ids), list(labels)) for ids, labels in items]
        return ds

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[list[int], list[int]]:
        return self.items[i]

    @property
    def max_len(self) -> int:
        return max((len(x[0]) for x in self.items), default=0)


class WithIndex(torch.utils.data.Dataset):
    """Items as (input_ids, labels, dataset index): KD from the offline top-k store looks rows up by index."""

    def __init__(self, dataset: ExampleDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[list[int], list[int], int]:
        return (*self.dataset[i], i)


def collate(pad_id: int):
    """Right-pad a batch: input_ids (B, T), attention_mask (B, T), labels (B, T) with -100 on padding,
    plus index (B,) when the items carry their dataset index (see :class:`WithIndex`)."""

    def fn(batch: list[tuple]) -> dict[str, torch.Tensor]:
        width = max(len(item[0]) for item in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (ids, lab, *_) in enumerate(batch):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            labels[r, : len(lab)] = torch.tensor(lab)
            mask[r, : len(ids)] = 1
        out = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        if len(batch[0]) == 3:
            out["index"] = torch.tensor([item[2] for item in batch], dtype=torch.long)
        return out

    return fn
