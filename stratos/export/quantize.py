r"""Dynamic int8 quantisation of the ONNX graph and what it costs in accuracy.

`onnxruntime.quantization.quantize_dynamic` stores MatMul/Gather weights as int8 with one scale per
output channel and quantises activations on the fly (no calibration data needed):

$$ W \approx s_c \cdot \mathrm{round}(W / s_c), \qquad s_c = \max_i |W_{ic}| / 127 $$

ORT's optional pre-processing (symbolic shape inference) is skipped: it took ~7 s on a 2-layer model,
longer than the rest of the export stage, and it does not change which weights are quantised.

The accuracy change is measured three ways, from cheapest to most meaningful:
  logit diff       max |z_int8 - z_fp32| on the prompts' real positions (teacher-forced)
  top1_agreement   share of positions where both pick the same next token, teacher-forced along the
                   fp32 greedy continuation (a smooth version of "same greedy output")
  task accuracy    fp32 vs int8 greedy answers graded by the task (done by the caller, see onnx.py)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Sequence

import numpy as np

from stratos.export.ort_lm import OrtCausalLM

INT8_FILE = "model.int8.onnx"


@contextlib.contextmanager
def _quiet_root_warning(text: str):
    """Drop one known root-logger warning (ORT's 'consider pre-processing' advice) while quantising."""
    filt = logging.Filter()
    filt.filter = lambda record: text not in record.getMessage()  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


def quantize_int8(onnx_dir: str, src_file: str = "model.onnx", dst_file: str = INT8_FILE) -> dict:
    """Write `onnx_dir/dst_file` (dynamic int8, per-channel); returns sizes (MB) and seconds."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = os.path.join(onnx_dir, src_file), os.path.join(onnx_dir, dst_file)
    t0 = time.time()
    with _quiet_root_warning("pre-processing before quantization"):
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
    return {"seconds": round(time.time() - t0, 3), "fp32_mb": os.path.getsize(src) / 2**20,
            "int8_mb": os.path.getsize(dst) / 2**20}


def _teacher_forced_logits(lm: OrtCausalLM, seq: Sequence[int]) -> np.ndarray:
    ids = np.asarray([seq], dtype=np.int64)
    mask = np.ones_like(ids)
    pos = np.arange(len(seq), dtype=np.int64)[None]
    logits, _ = lm.forward(ids, mask, pos, lm.empty_past(1))
    return logits[0]  # (T, V)


def compare_int8(ref: OrtCausalLM, q: OrtCausalLM, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                 eos_ids: Sequence[int], pad_id: int) -> dict:
    """Logit diff, top-1 agreement and greedy-output match of `q` (int8) against `ref` (fp32)."""
    ref_out = ref.greedy(prompts, max_new_tokens, eos_ids=eos_ids, pad_id=pad_id)
    q_out = q.greedy(prompts, max_new_tokens, eos_ids=eos_ids, pad_id=pad_id)
    worst, agree, total = 0.0, 0, 0
    for p, cont in zip(prompts, ref_out):
        seq = list(p) + cont[:-1] if cont else list(p)
        z_r, z_q = _teacher_forced_logits(ref, seq), _teacher_forced_logits(q, seq)
        worst = max(worst, float(np.abs(z_r - z_q).max()))
        gen = slice(len(p) - 1, len(seq))  # positions whose next token is a generated one
        agree += int((z_r[gen].argmax(-1) == z_q[gen].argmax(-1)).sum())
        total += len(cont)
    same = sum(a == b for a, b in zip(ref_out, q_out))
    return {"max_abs_diff": worst, "top1_agreement": agree / max(total, 1), "greedy_match": same / len(prompts)}
