"""Batched greedy generation with transformers (KV cache), shared by HF teachers and evaluation.

Prompts are left-padded so every row's last prompt token sits at the same position and the
new tokens line up; `generate` then runs incrementally with its KV cache.
"""

from __future__ import annotations

import torch


def encode_prompt(tokenizer, question: str) -> list[int]:
    """Token ids of a prompt exactly as the distill stage formats it: BOS + question + newline."""
    return [tokenizer.bos_token_id] + tokenizer(question + "\n", add_special_tokens=False)["input_ids"]


def left_padded(ids: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, T) with T the longest prompt, each row's tokens at the right end."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        input_ids[r, width - len(x) :] = torch.tensor(x)
        mask[r, width - len(x) :] = 1
    return input_ids, mask


@torch.inference_mode()
def greedy_generate(model, tokenizer, questions: list[str], max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy completions (text after the prompt, special tokens removed) for each question."""
    model.eval()
    out: list[str] = []
    pad = tokenizer.pad_token_id
    for i in range(0, len(questions), batch_size):
        input_ids, mask = left_padded([encode_prompt(tokenizer, q) for q in questions[i : i + batch_size]], pad)
        width = input_ids.shape[1]
        gen = model.generate(
            input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, use_cache=True,
        )
        out.extend(tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True))
    return out


@torch.inference_mode()
def sampled_generate(model, tokenizer, questions: list[str], max_new_tokens: int, k: int, temperature: float,
                     seed: int, batch_size: int = 64) -> list[list[str]]:
    """`k` sampled completions per question (softmax at `temperature`, no top-k / top-p), in question order.

    The draws depend on (`seed`, batch index) only: each batch samples under a forked global RNG seeded with
    seed + batch index, so the caller's RNG is untouched and a rerun draws the same samples. Rows of a batch
    are the questions repeated k times (HF `num_return_sequences`), so at most `batch_size` questions x k
    sequences decode together.
    """
    model.eval()
    out: list[list[str]] = []
    pad = tokenizer.pad_token_id
    for b, i in enumerate(range(0, len(questions), batch_size)):
        input_ids, mask = left_padded([encode_prompt(tokenizer, q) for q in questions[i : i + batch_size]], pad)
        width = input_ids.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + b)
            gen = model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=True,
                temperature=float(temperature), top_k=0, top_p=1.0, num_return_sequences=int(k),
                pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, use_cache=True,
            )  # (B * k, T + new): row r * k + j is question r's j-th sample
        texts = tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
        out.extend(texts[r * k : (r + 1) * k] for r in range(input_ids.shape[0]))
    return out
