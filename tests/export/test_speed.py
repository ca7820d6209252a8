"""Speed comparison runs both runtimes on the same work and checks they agree."""

from __future__ import annotations

from transformers import AutoModelForCausalLM

from stratos.export.ort_lm import OrtCausalLM
from stratos.export.speed import compare_generate


def test_compare_generate(tiny_export):
    model = AutoModelForCausalLM.from_pretrained(tiny_export["hf"])
    lm = OrtCausalLM(tiny_export["onnx"], threads=1)
    r = compare_generate(model, lm, [[1, 40, 41], [1, 50, 51, 52, 53]], new_tokens=8, pad_id=0, repeats=2)
    assert r["same_tokens"] is True
    assert r["torch"]["requests"] == r["onnx"]["requests"] == 4
    for k in ("torch", "onnx"):
        assert r[k]["tokens_per_s"] > 0 and 0 < r[k]["p50_ms"] <= r[k]["p95_ms"]
    assert abs(r["speedup"] - r["onnx"]["tokens_per_s"] / r["torch"]["tokens_per_s"]) < 1e-9
