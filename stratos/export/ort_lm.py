"""Incremental (KV-cache) generation with ONNX Runtime over a graph from `onnx_graph.export_onnx`.

    lm = OrtCausalLM("outputs/.../export/onnx")
    tokens = lm.greedy([[1, 5, 9], [1, 7]], max_new_tokens=32, eos_ids={2}, pad_id=0)

Batches are left-padded (as in `stratos.models.generate`): every row's last prompt token sits in the
same column, so one decode step feeds one new token per row. Position ids come from the mask
(`cumsum - 1`), matching what transformers' `generate` does, so greedy tokens are identical to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import onnxruntime as ort

from stratos.export.onnx_graph import OnnxMeta


@dataclass
class DecodeState:
    """Everything a decode step needs. `past`: 2L arrays (B, H_kv, P, D) (empty without a KV cache);
    `mask`: (B, P) attention mask so far; `next_pos`: (B,) position of the next token; `ids`: the
    full token history (B, P), kept only by graphs without a cache, which recompute everything."""

    past: list
    mask: np.ndarray
    next_pos: np.ndarray
    ids: np.ndarray | None


def session_options(threads: int = 0) -> ort.SessionOptions:
    """CPU session options. `threads` = intra-op threads (0 = ORT's default: one per core).

    Inter-op parallelism is off: a decoder is a chain of dependent ops, and a server runs several
    sessions' `run` calls concurrently instead (ORT sessions are thread-safe for `run`).
    """
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: ORT warns about unused initializers after folding
    return so


class OrtCausalLM:
    """One ONNX Runtime session with the KV-cache calling convention of `onnx_graph`."""

    def __init__(self, model_dir: str, threads: int = 0, file: str | None = None) -> None:
        self.meta = OnnxMeta.load(model_dir)
        path = os.path.join(model_dir, file or self.meta.file)
        self.session = ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])
        out_type = self.session.get_outputs()[0].type  # logits and cache share the model's dtype
        self.dtype = np.float16 if "float16" in out_type else np.float32
        self._past_names = self.meta.input_names[3:]  # empty for a graph without KV cache

    @property
    def num_layers(self) -> int:
        return self.meta.num_layers

    def empty_past(self, batch: int) -> list[np.ndarray]:
        """A zero-length cache: (B, H_kv, 0, D) per key and value, for the prefill step."""
        shape = (batch, self.meta.kv_heads, 0, self.meta.head_dim)
        return [np.zeros(shape, dtype=self.dtype) for _ in self._past_names]

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
                past: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """logits (B, T, V) and the present cache (2L arrays of (B, H_kv, P+T, D); [] without a cache)."""
        feed = {"input_ids": input_ids.astype(np.int64, copy=False),
                "attention_mask": attention_mask.astype(np.int64, copy=False),
                "position_ids": position_ids.astype(np.int64, copy=False)}
        feed.update(zip(self._past_names, past))
        out = self.session.run(None, feed)
        return out[0], out[1:]

    def prefill(self, prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, DecodeState]:
        """Run the left-padded prompts; returns (logits (B, T, V), state for `decode`)."""
        width = max(len(p) for p in prompts)
        ids = np.full((len(prompts), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(prompts), width), dtype=np.int64)
        for r, p in enumerate(prompts):
            ids[r, width - len(p):] = p
            mask[r, width - len(p):] = 1
        pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        logits, past = self.forward(ids, mask, pos, self.empty_past(len(prompts)))
        return logits, DecodeState(past, mask, pos[:, -1] + 1, None if self.meta.kv_cache else ids)

    def decode(self, tokens: np.ndarray, state: DecodeState) -> tuple[np.ndarray, DecodeState]:
        """One step: append `tokens` (B,); returns (next-token logits (B, V), new state)."""
        b = len(tokens)
        mask = np.concatenate([state.mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        if self.meta.kv_cache:  # feed only the new token; the graph extends the cache
            logits, past = self.forward(tokens[:, None], mask, state.next_pos[:, None], state.past)
            return logits[:, -1, :], DecodeState(past, mask, state.next_pos + 1, None)
        # no cache in the graph: recompute the whole sequence each step (O(T^2) work; the baseline)
        ids = np.concatenate([state.ids, tokens[:, None].astype(np.int64)], axis=1)
        pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        logits, _ = self.forward(ids, mask, pos, [])
        return logits[:, -1, :], DecodeState([], mask, state.next_pos + 1, ids)

    def greedy(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_ids: Iterable[int] = (),
               pad_id: int = 0) -> list[list[int]]:
        """Greedy continuation of each prompt; a row stops after its first EOS (kept in the output).

        With no `eos_ids` every row gets exactly `max_new_tokens` tokens (what benchmarks want).
        """
        eos = np.array(sorted(set(eos_ids)), dtype=np.int64)
        logits, state = self.prefill(prompts, pad_id)
        logits = logits[:, -1, :]
        out = [[] for _ in prompts]
        done = np.zeros(len(prompts), dtype=bool)
        for step in range(max_new_tokens):
            nxt = logits.argmax(-1)  # (B,)
            for r in np.flatnonzero(~done):
                out[r].append(int(nxt[r]))
            done |= np.isin(nxt, eos)
            if done.all() or step == max_new_tokens - 1:
                break
            nxt = np.where(done, pad_id, nxt)  # finished rows idle on padding; their output is final
            logits, state = self.decode(nxt, state)
        return out
