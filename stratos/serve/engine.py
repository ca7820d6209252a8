r"""Token-by-token generation for the server, over ONNX Runtime (KV-cache graph) or torch.

An engine owns a model and its tokenizer and turns one prompt into a stream of `TokenEvent`s:

    engine = load_engine("outputs/.../export/onnx")          # or an HF checkpoint dir (torch)
    for ev in engine.stream(prompt_ids, SamplingParams(max_tokens=32, temperature=0)):
        ev.text, ev.logprob, ev.top
    engine.logits(prompt_ids)                                # (T, V): one forward, every position (scoring.py)

Each request decodes alone (batch 1) with its own cache; concurrency comes from running several
requests' steps in threads (ORT's `run` and torch ops release the GIL). Sampling, per step, from
logits $z \in \mathbb{R}^V$:

    temperature 0          argmax z (greedy)
    temperature T > 0      p = softmax(z / T), restricted to the smallest top-p nucleus, renormalised
    logprobs               log_softmax(z) of the *model* (before temperature and top-p, as vLLM reports)

Stop strings are matched on the decoded text; text that could still become a stop string, or that ends
in an incomplete UTF-8 character, is held back until it is safe, so streamed deltas never need retracting.
"""

from __future__ import annotations

import abc
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from stratos.export.hf import load_tokenizer, read_export_meta
from stratos.serve.settings import resolve_model_dir
from stratos.models.textstream import TextStream, token_bytes_fn


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None  # None: off; k >= 0: the chosen token's logprob plus the top k
    ignore_eos: bool = False


@dataclass
class TokenEvent:
    token_id: int
    text: str  # new text made safe to emit by this token ("" while held back)
    logprob: float | None = None
    top: list[tuple[int, float]] = field(default_factory=list)
    finish_reason: str | None = None  # set on the last event: "stop" (EOS / stop string) or "length"


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    m = z.max()
    return z - m - np.log(np.exp(z - m).sum())


def sample(logits: np.ndarray, p: SamplingParams, rng: np.random.Generator) -> int:
    """Next token id from logits (V,) under temperature / top-p."""
    if p.temperature <= 0:
        return int(logits.argmax())
    lp = _log_softmax(logits / p.temperature)
    probs = np.exp(lp)
    if p.top_p < 1.0:
        order = np.argsort(-probs)
        keep = np.cumsum(probs[order]) - probs[order] < p.top_p  # tokens needed to reach mass top_p
        mask = np.zeros_like(probs, dtype=bool)
        mask[order[keep]] = True
        probs = np.where(mask, probs, 0.0)
        probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


class Engine(abc.ABC):
    """Shared decoding loop; backends implement `_start` (prefill) and `_step` (one cached step)."""

    backend = "base"

    def __init__(self, model_dir: str, tokenizer, context: int, name: str | None) -> None:
        self.model_dir = model_dir
        self.tokenizer = tokenizer
        self.context = int(context or 2048)
        # requests are checked against the context explicitly (a 400 with the numbers); the tokenizer's
        # own "sequence longer than model_max_length" warning would only add noise to the server log
        tokenizer.model_max_length = 1 << 60
        meta = read_export_meta(model_dir)
        self.name = name or meta.get("name") or os.path.basename(os.path.normpath(model_dir))
        self.eos_ids = _eos_ids(model_dir, tokenizer)
        self.token_bytes = token_bytes_fn(tokenizer)

    @abc.abstractmethod
    def _start(self, prompt_ids: Sequence[int]):  # -> (logits (V,), state); each backend implements it
        ...

    @abc.abstractmethod
    def _step(self, token: int, state):  # -> (logits (V,), state)
        ...

    @abc.abstractmethod
    def logits(self, ids: Sequence[int]) -> np.ndarray:  # -> (T, V): row i predicts ids[i + 1] (scoring)
        ...

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def chat_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def stream(self, prompt_ids: Sequence[int], params: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[TokenEvent]:
        """Generate up to `params.max_tokens` tokens; the last event carries `finish_reason`."""
        rng = np.random.default_rng(params.seed)
        text = TextStream(self.tokenizer, params.stop)
        logits, state = self._start(prompt_ids)
        for i in range(params.max_tokens):
            if cancel is not None and cancel.is_set():
                return
            tok = sample(logits, params, rng)
            ev = TokenEvent(tok, "")
            if params.logprobs is not None:
                lp = _log_softmax(logits)
                ev.logprob = float(lp[tok])
                if params.logprobs > 0:
                    top = np.argpartition(-lp, params.logprobs - 1)[: params.logprobs]
                    top = top[np.argsort(-lp[top])]
                    ev.top = [(int(t), float(lp[t])) for t in top]
            is_eos = tok in self.eos_ids and not params.ignore_eos
            if is_eos:  # EOS ends the text; like OpenAI, its own text is not part of the answer
                ev.text, ev.finish_reason = text.finish(), "stop"
                yield ev
                return
            ev.text, hit_stop = text.push(tok)
            if hit_stop:
                ev.finish_reason = "stop"
                yield ev
                return
            if i == params.max_tokens - 1:
                ev.text += text.finish()
                ev.finish_reason = "length"
                yield ev
                return
            yield ev
            logits, state = self._step(tok, state)


def _eos_ids(model_dir: str, tokenizer) -> set[int]:
    ids: set[int] = set()
    path = os.path.join(model_dir, "generation_config.json")
    if os.path.exists(path):
        with open(path) as f:
            eos = json.load(f).get("eos_token_id")
        ids |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


class OnnxEngine(Engine):
    backend = "onnx"

    def __init__(self, model_dir: str, threads: int = 1, name: str | None = None, file: str | None = None) -> None:
        from stratos.export.ort_lm import OrtCausalLM

        self.lm = OrtCausalLM(model_dir, threads=threads, file=file)
        tok = load_tokenizer(model_dir)
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        super().__init__(model_dir, tok, self.lm.meta.max_positions, name)

    def _start(self, prompt_ids):
        logits, state = self.lm.prefill([list(prompt_ids)], self.pad)
        return logits[0, -1], state

    def _step(self, token, state):
        logits, state = self.lm.decode(np.array([token], dtype=np.int64), state)
        return logits[0], state

    def logits(self, ids):
        return self.lm.prefill([list(ids)], self.pad)[0][0]  # the prefill's (1, T, V), cache discarded


class TorchEngine(Engine):
    backend = "torch"

    def __init__(self, model_dir: str, threads: int = 1, name: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if threads > 0:
            torch.set_num_threads(threads)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        cfg = self.model.config
        context = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 0)
        super().__init__(model_dir, load_tokenizer(model_dir), context, name)

    def _run(self, ids: list[int], past):
        with self.torch.inference_mode():
            out = self.model(input_ids=self.torch.tensor([ids]), past_key_values=past, use_cache=True)
        return out.logits[0, -1].float().numpy(), out.past_key_values

    def _start(self, prompt_ids):
        return self._run(list(prompt_ids), None)

    def _step(self, token, state):
        return self._run([token], state)

    def logits(self, ids):
        with self.torch.inference_mode():
            out = self.model(input_ids=self.torch.tensor([list(ids)]), use_cache=False)
        return out.logits[0].float().numpy()


def load_engine(path: str, backend: str = "auto", threads: int = 1, name: str | None = None) -> Engine:
    model_dir, backend = resolve_model_dir(path, backend)
    return OnnxEngine(model_dir, threads, name) if backend == "onnx" else TorchEngine(model_dir, threads, name)
