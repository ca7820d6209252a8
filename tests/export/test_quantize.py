"""Dynamic int8: a smaller graph, and an accuracy report that is exact for identical graphs."""

from __future__ import annotations

import os
import shutil

from stratos.export.ort_lm import OrtCausalLM
from stratos.export.quantize import INT8_FILE, compare_int8, quantize_int8

PROMPTS = [[1, 40, 41, 42], [1, 50, 51], [1, 60]]


def test_quantize_and_compare(tiny_export, tmp_path):
    d = str(tmp_path / "onnx")
    shutil.copytree(tiny_export["onnx"], d)
    info = quantize_int8(d)
    assert os.path.exists(os.path.join(d, INT8_FILE)) and info["int8_mb"] < info["fp32_mb"]
    ref, q = OrtCausalLM(d), OrtCausalLM(d, file=INT8_FILE)
    same = compare_int8(ref, ref, PROMPTS, 12, [], 0)
    assert same == {"max_abs_diff": 0.0, "top1_agreement": 1.0, "greedy_match": 1.0}
    cmp = compare_int8(ref, q, PROMPTS, 12, [], 0)
    assert 0.0 < cmp["max_abs_diff"] < 10.0  # quantisation noise: non-zero, bounded
    assert 0.0 <= cmp["top1_agreement"] <= 1.0 and 0.0 <= cmp["greedy_match"] <= 1.0
