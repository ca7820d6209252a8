"""The export stage end to end on a tiny distill output: files, parity, speed and int8 metrics, vLLM files."""

from __future__ import annotations

import json
import os

import pytest

from stratos.artifacts import Manifest, StageContext, write_json, write_jsonl
from stratos.export.ort_lm import OrtCausalLM
from stratos.export.stage import run
from tests.conftest import compose_cfg

ROWS = [
    {"id": "a", "question": "Hand: 3m 3m 3m 4m 4m 4m 5m 5m 5m 7m 8m 8m 9m\nWinning tiles?", "answer": "8m",
     "winning_tiles": ["8m"], "hand": "3334445557889m", "n_waits": 1, "variant": "basic"},
    {"id": "b", "question": "Hand: 1m 1m 1m 2m 3m 4m 5m 6m 7m 8m 9m 9m 9m\nWinning tiles?",
     "answer": "1m 2m 3m 4m 5m 6m 7m 8m 9m", "winning_tiles": [f"{i}m" for i in range(1, 10)],
     "hand": "1112345678999m", "n_waits": 9, "variant": "basic"},
    {"id": "c", "question": "Hand: 1p 2p 3p 5s 5s\nWinning tiles?", "answer": "", "winning_tiles": [],
     "hand": "123p55s", "n_waits": 0, "variant": "basic"},
]


def _ctx(tmp_path, src: str, plan: dict | None = None) -> StageContext:
    run_dir = str(tmp_path / "run")
    test_url = write_jsonl(f"{run_dir}/data/test.jsonl", ROWS)
    inputs = {"data": Manifest(stage="data", config_hash="d", outputs={"test.jsonl": test_url}),
              "distill": Manifest(stage="distill", config_hash="t", outputs={"model": src})}
    if plan is not None:
        url = write_json(f"{run_dir}/plan/plan.json", {"selected": plan, "candidates": 1})
        inputs["plan"] = Manifest(stage="plan", config_hash="p", outputs={"plan.json": url})
    return StageContext(run_dir=run_dir, stage="export", config_hash="e", inputs=inputs)


def test_onnx_stage(tiny_export, tmp_path):
    cfg = compose_cfg(["+task=mahjong", "deploy=onnx", "deploy.quantize_int8=true", "deploy.quant_eval_n=3",
                       "deploy.bench_new_tokens=8", "deploy.bench_prompts=2"], tmp_path)
    ctx = _ctx(tmp_path, tiny_export["src"])
    m = run(cfg, ctx)
    assert set(m.outputs) >= {"hf", "onnx", "export.json"}
    met = m.metrics
    assert met["export/onnx_max_abs_diff"] <= 1e-4 and met["export/greedy_match"] == 1.0
    assert met["deploy/onnx_tokens_per_s"] > 0 and met["deploy/torch_tokens_per_s"] > 0
    speedup = met["deploy/onnx_tokens_per_s"] / met["deploy/torch_tokens_per_s"]
    assert met["deploy/onnx_speedup"] == pytest.approx(speedup)
    assert met["export/int8_mb"] < met["export/onnx_mb"]
    assert met["export/int8_accuracy_delta"] == pytest.approx(met["export/int8_accuracy"] - met["export/onnx_accuracy"])
    onnx_dir = m.outputs["onnx"]
    par = json.load(open(os.path.join(onnx_dir, "parity.json")))
    assert par["greedy"]["n"] == len(ROWS) and par["logits"]["shapes"][-1][0] == len(ROWS)
    assert json.load(open(os.path.join(onnx_dir, "int8.json")))["task_accuracy"]["n"] == len(ROWS)
    assert OrtCausalLM(onnx_dir).meta.kv_cache  # self-contained: graph + tokenizer beside it
    assert os.path.exists(os.path.join(onnx_dir, "tokenizer.json"))
    summary = json.load(open(m.outputs["export.json"]))
    assert summary["name"] == cfg.student.name and summary["target"] == "onnx"


def test_parity_failure_stops_the_stage(tiny_export, tmp_path):
    cfg = compose_cfg(["+task=mahjong", "deploy=onnx", "deploy.parity_tol=1e-12", "deploy.bench_prompts=0"], tmp_path)
    with pytest.raises(RuntimeError, match="disagrees with torch"):
        run(cfg, _ctx(tmp_path, tiny_export["src"]))


def test_vllm_stage_reads_the_plan(tiny_export, tmp_path):
    cfg = compose_cfg(["+task=mahjong", "deploy=vllm", "servers.slurm.partition=gpu"], tmp_path)
    plan = {"server": "gcp/a2-highgpu-2g/us-central1", "gpu": "A100x2", "estimates": {"n_gpus": 2}}
    m = run(cfg, _ctx(tmp_path, tiny_export["src"], plan))
    assert m.metrics["export/vllm_tensor_parallel"] == 2
    vdir = m.outputs["vllm"]
    args = json.load(open(os.path.join(vdir, "vllm_args.json")))
    assert args["params"]["dtype"] == "bfloat16" and args["params"]["server"] == plan["server"]
    assert "#SBATCH --partition=gpu" in open(os.path.join(vdir, "serve.sbatch")).read()
    assert json.load(open(m.outputs["export.json"]))["plan_server"] == plan["server"]
