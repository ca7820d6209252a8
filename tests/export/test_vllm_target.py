"""vLLM target: parameters from the plan, launch scripts, multi-LoRA, and an honest smoke record."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess

import pytest
from transformers import AutoModelForCausalLM

from stratos.artifacts import StageContext
from stratos.errors import UserError
from stratos.export.job import ExportJob
from stratos.export.vllm_target import (VllmTarget, lora_rank_limit, pick_dtype, pick_quantization, plan_gpus,
                                        sbatch_script, tensor_parallel)


def test_plan_gpus_is_defensive():
    assert plan_gpus({"gpu": "H100x8", "estimates": {"n_gpus": 4}}) == ("H100", 4)  # estimate wins
    assert plan_gpus({"gpu": "A10G x 2"}) == ("A10G", 2)
    assert plan_gpus({"gpu": "cpu"}) == ("cpu", 0)
    assert plan_gpus({}) == ("", 0)
    assert plan_gpus({"server": "x", "gpu": None, "estimates": None}) == ("", 0)


@pytest.mark.parametrize("gpus,heads,kv,want", [(8, 32, 8, 8), (8, 14, 2, 2), (4, 12, 4, 4), (3, 32, 8, 2),
                                                (8, 16, 2, 8), (1, 7, 7, 1), (0, 8, 8, 1)])
def test_tensor_parallel(gpus, heads, kv, want):
    assert tensor_parallel(gpus, heads, kv) == want


def test_dtype_quantization_and_lora_rank():
    assert pick_dtype("H100", "auto") == "bfloat16" and pick_dtype("V100", "auto") == "float16"
    assert pick_dtype("T4", "auto") == "float16" and pick_dtype("cpu", "auto") == "auto"
    assert pick_dtype("V100", "float32") == "float32"
    assert pick_quantization("H100", 8) == "fp8" and pick_quantization("A100", 8) is None
    assert pick_quantization("A10G", 4) == "bitsandbytes" and pick_quantization("H100", 16) is None
    assert lora_rank_limit([4]) == 8 and lora_rank_limit([16, 33]) == 64


def test_sbatch_script_is_valid_bash():
    s = sbatch_script(["vllm", "serve", "/m dir"], job_name="j", gpus=2,
                      slurm={"partition": "gpu", "account": "acct", "qos": None, "time_min": 30}, env={"A": '"b"'})
    assert "#SBATCH --partition=gpu" in s and "#SBATCH --account=acct" in s and "--qos" not in s
    assert "#SBATCH --gres=gpu:2" in s and "#SBATCH --time=30" in s
    assert "srun vllm serve '/m dir'" in s
    subprocess.run(["bash", "-n"], input=s, text=True, check=True)


def _job(tmp_path, hf_dir, **kw) -> ExportJob:
    ctx = StageContext(run_dir=str(tmp_path / "run"), stage="export", config_hash="h")
    return ExportJob(ctx=ctx, hf_dir=hf_dir, name="tiny", **kw)


def _args(out: str) -> list[str]:
    with open(os.path.join(out, "serve.sh")) as f:
        line = next(x for x in f if x.startswith("exec "))
    return shlex.split(line)[1:]


def test_build_from_plan(tiny_export, tmp_path):
    plan = {"server": "aws/g5.48xlarge/us-east-1", "gpu": "A10Gx8", "estimates": {"n_gpus": 8}, "quant_bits": 16}
    job = _job(tmp_path, tiny_export["hf"], plan=plan, slurm={"partition": "gpu", "time_min": 90})
    m = VllmTarget().build(job)
    out = job.ctx.out_dir + "/vllm"
    argv = _args(out)
    assert argv[:3] == ["vllm", "serve", tiny_export["hf"]]
    opt = dict(zip(argv[3::2], argv[4::2]))
    assert opt["--tensor-parallel-size"] == "4"  # 8 GPUs, but 4 attention heads cannot split 8 ways
    assert opt["--max-model-len"] == "256" and opt["--dtype"] == "bfloat16" and opt["--served-model-name"] == "tiny"
    assert opt["--host"] == "127.0.0.1"
    sb = open(os.path.join(out, "serve.sbatch")).read()
    assert "#SBATCH --partition=gpu" in sb and "#SBATCH --gres=gpu:4" in sb and "#SBATCH --time=90" in sb
    args = json.load(open(os.path.join(out, "vllm_args.json")))
    assert args["params"]["tp_source"] == "plan" and args["params"]["server"] == plan["server"]
    smoke = json.load(open(os.path.join(out, "smoke.json")))
    if importlib.util.find_spec("vllm") is None:
        assert smoke["ran"] is False and "not importable" in smoke["reason"] and m["export/vllm_smoke_ran"] == 0
    assert m["export/vllm_tensor_parallel"] == 4 and m["export/vllm_max_model_len"] == 256
    for script in ("serve.sh", "serve.sbatch"):
        subprocess.run(["bash", "-n", os.path.join(out, script)], check=True)


def test_planner_tensor_parallel_wins_over_gpu_count(tiny_export, tmp_path):
    plan = {"gpu": "H100x8", "estimates": {"n_gpus": 8, "tensor_parallel": 2, "replicas": 4}}
    p = VllmTarget().params(_job(tmp_path, tiny_export["hf"], plan=plan))
    assert (p["tensor_parallel_size"], p["replicas"], p["gpu"]) == (2, 4, "H100")


def test_without_plan_uses_config_and_model(tiny_export, tmp_path):
    job = _job(tmp_path, tiny_export["hf"])
    t = VllmTarget(vllm={"max_model_len": 128, "dtype": "float16"})
    p = t.params(job)
    assert (p["tensor_parallel_size"], p["tp_source"], p["max_model_len"], p["dtype"]) == (1, "default", 128, "float16")
    with pytest.raises(UserError, match="deploy.vllm.max_model_len"):
        VllmTarget(vllm={"max_model_len": 100000}).params(job)


def test_multi_lora(tiny_export, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_export["src"])
    adapter = tmp_path / "adapter"
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    extra = tmp_path / "extra"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_export["src"]),
                   LoraConfig(r=16, target_modules=["q_proj"])).save_pretrained(extra)
    job = _job(tmp_path, tiny_export["hf"], distill_outputs={"adapter": str(adapter), "base_model": tiny_export["src"]})
    VllmTarget(vllm={"lora": True, "lora_modules": {"other": str(extra)}}).build(job)
    out = job.ctx.out_dir + "/vllm"
    argv = _args(out)
    assert argv[2] == os.path.join(out, "base")  # the base, exported with the same loadability fixes
    assert os.path.exists(os.path.join(out, "base", "config.json"))
    i = argv.index("--lora-modules")
    assert argv[i + 1: i + 3] == [f"tiny={out}/adapters/tiny", f"other={out}/adapters/other"]
    assert argv[argv.index("--max-lora-rank") + 1] == "16" and argv[argv.index("--max-loras") + 1] == "2"
    assert "--enable-lora" in argv
    assert os.path.exists(os.path.join(out, "adapters", "other", "adapter_config.json"))


def test_lora_without_adapters_is_a_user_error(tiny_export, tmp_path):
    with pytest.raises(UserError, match="deploy.vllm.lora"):
        VllmTarget(vllm={"lora": True}).build(_job(tmp_path, tiny_export["hf"]))
