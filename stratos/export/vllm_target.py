"""vLLM target (deploy=vllm): the checkpoint plus a ready `vllm serve` command and Slurm script.

Parameters come from the plan when it ran (plan.json "selected": gpu "H100x4", estimates.n_gpus /
tensor_parallel / replicas, quant_bits), else from the config, else from the model:

  tensor_parallel_size  the largest t <= GPUs on the chosen server such that the attention heads split
                        evenly (heads % t == 0) and the KV heads either split or replicate evenly
                        (kv % t == 0 or t % kv == 0) — vLLM refuses other values.
  max_model_len         deploy.vllm.max_model_len, capped by the model's context (vLLM rejects more).
  dtype                 bfloat16 on GPUs with native bf16 (compute capability >= 8: A100, H100, L4, ...),
                        float16 on older ones (V100, T4), else "auto" (vLLM reads the checkpoint).
  quantization          plan quant_bits 8 -> fp8 on GPUs with FP8 (H100/H200/L4/L40S/B200); 4 -> bitsandbytes.
  replicas              recorded in vllm_args.json: run that many copies of serve.sh/serve.sbatch behind a
                        load balancer (data parallelism is outside one `vllm serve`).

Written to export/vllm/: serve.sh, serve.sbatch, vllm_args.json, smoke.json, adapters/ (multi-LoRA).
Multi-LoRA (deploy.vllm.lora=true) serves the un-merged adapter(s) on the base model with
`--enable-lora --lora-modules name=dir`, so several fine-tunes share one base's memory.

When `vllm` is importable the smoke test starts serve.sh, waits for /v1/models and asks for one
completion; otherwise smoke.json says it was not run, and why. Nothing claims a run that did not happen.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
from dataclasses import asdict

from stratos.config import VllmConfig
from stratos.errors import UserError
from stratos.export.hf import export_hf
from stratos.export.job import ExportJob
from stratos.export.outputs import VLLM_DIR
from stratos.export.smoke import smoke_test

BF16_GPUS = ("A100", "A10", "A30", "A40", "A6000", "L4", "L40", "H100", "H200", "H800", "GH200", "B100", "B200",
             "RTX 30", "RTX 40", "RTX 50", "MI2", "MI3")
FP8_GPUS = ("H100", "H200", "H800", "GH200", "L4", "L40", "B100", "B200", "MI3")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM accepts for --max-lora-rank


def plan_gpus(selected: dict) -> tuple[str, int]:
    """(GPU model, count) of the plan's chosen server; ("", 0) when the plan says nothing usable."""
    gpu, count = "", 0
    g = selected.get("gpu")
    if isinstance(g, str):
        m = re.fullmatch(r"\s*(.+?)\s*[xX×]\s*(\d+)\s*", g)
        gpu, count = (m.group(1), int(m.group(2))) if m else (g, 0)
    est = selected.get("estimates") or {}
    for key in ("n_gpus", "gpus", "gpu_count"):
        for src in (est, selected):
            if isinstance(src.get(key), (int, float)) and src[key] > 0:
                return gpu, int(src[key])
    return gpu, count


def tensor_parallel(gpus: int, heads: int, kv_heads: int) -> int:
    """Largest TP degree <= gpus that vLLM accepts for this head layout (>= 1)."""
    for t in range(max(gpus, 1), 0, -1):
        if heads % t == 0 and (kv_heads % t == 0 or t % kv_heads == 0):
            return t
    return 1


def pick_dtype(gpu: str, requested: str) -> str:
    if requested != "auto":
        return requested
    if not gpu or gpu.lower() == "cpu":
        return "auto"
    up = gpu.upper()
    return "bfloat16" if any(k.upper() in up for k in BF16_GPUS) else "float16"


def pick_quantization(gpu: str, bits: int) -> str | None:
    if bits == 8 and any(k in gpu.upper() for k in FP8_GPUS):
        return "fp8"  # dynamic FP8 weights, no calibration; halves weight memory
    if bits == 4:
        return "bitsandbytes"  # in-flight 4-bit; needs `pip install bitsandbytes` on the serving node
    return None


def lora_rank_limit(ranks: list[int]) -> int:
    need = max(ranks or [8])
    return next((r for r in LORA_RANKS if r >= need), LORA_RANKS[-1])


def _model_heads(hf_dir: str) -> tuple[int, int, int]:
    with open(os.path.join(hf_dir, "config.json")) as f:
        c = json.load(f)
    heads = int(c.get("num_attention_heads") or c.get("n_head") or 1)
    kv = int(c.get("num_key_value_heads") or heads)
    ctx = int(c.get("max_position_embeddings") or c.get("n_positions") or 0)
    return heads, kv, ctx


def sbatch_script(command: list[str], *, job_name: str, gpus: int, slurm: dict, env: dict[str, str]) -> str:
    """An sbatch script that runs `command` on one node of the configured partition."""
    lines = ["#!/usr/bin/env bash", f"#SBATCH --job-name={job_name}", "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
             f"#SBATCH --cpus-per-task={max(4, 4 * gpus)}", f"#SBATCH --time={int(slurm.get('time_min') or 60)}",
             "#SBATCH --output=%x-%j.out"]
    if gpus > 0:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    for key in ("partition", "account", "qos"):
        if slurm.get(key):
            lines.append(f"#SBATCH --{key}={slurm[key]}")
    lines += ["set -euo pipefail", *[f"export {k}={v}" for k, v in env.items()],
              "# The server binds the host below; reach it through an SSH tunnel, e.g.",
              "#   ssh -N -L 8000:127.0.0.1:8000 <node>", f"srun {shlex.join(command)}", ""]
    return "\n".join(lines)


class VllmTarget:
    """`build(job)` writes the vLLM launch files and returns the manifest metrics."""

    def __init__(self, name: str = "vllm", host: str = "127.0.0.1", port: int = 8000,
                 api_key_env: str = "STRATOS_API_KEY", vllm: dict | None = None, **_: object) -> None:
        self.name, self.host, self.port, self.api_key_env = name, host, int(port), api_key_env
        self.opts = {**asdict(VllmConfig()), **(vllm or {})}  # VllmConfig owns the defaults

    def params(self, job: ExportJob) -> dict:
        """Every `vllm serve` setting with where it came from (plan, config or model)."""
        heads, kv, context = _model_heads(job.hf_dir)
        gpu, gpus = plan_gpus(job.plan)
        est = job.plan.get("estimates") or {}
        tp_plan = int(est.get("tensor_parallel") or 0) if isinstance(est, dict) else 0  # the planner's own split
        tp_cfg = int(self.opts["tensor_parallel_size"])
        tp = tensor_parallel(tp_cfg or tp_plan or gpus or 1, heads, kv)
        mml = int(self.opts["max_model_len"]) or context
        if context and mml > context:
            raise UserError(f"invalid value for 'deploy.vllm.max_model_len': {mml} "
                            f"(allowed: 1..{context}, the model's context)")
        return {"tensor_parallel_size": tp, "tp_source": "config" if tp_cfg else ("plan" if gpus else "default"),
                "gpu": gpu or None, "gpus_on_server": gpus, "max_model_len": mml,
                "dtype": pick_dtype(gpu, str(self.opts["dtype"])),
                "quantization": pick_quantization(gpu, int(job.plan.get("quant_bits") or 16)),
                "gpu_memory_utilization": float(self.opts["gpu_memory_utilization"]),
                "server": job.plan.get("server"), "heads": heads, "kv_heads": kv,
                "replicas": int(est.get("replicas") or 1) if isinstance(est, dict) else 1}

    def _lora(self, job: ExportJob, out: str) -> tuple[str, dict[str, str], int]:
        """(base model dir or hub id, {served name: adapter dir}, max rank) for multi-LoRA serving."""
        adapters = dict(self.opts["lora_modules"] or {})
        own = job.distill_outputs.get("adapter")
        if own:
            adapters = {job.name: own, **adapters}
        if not adapters:
            raise UserError("invalid value for 'deploy.vllm.lora': True needs LoRA adapters (train with "
                            "student.peft.method=lora, or list deploy.vllm.lora_modules: {name: adapter_dir})")
        base = job.distill_outputs.get("base_model") or job.student_name_or_path
        if not base:
            raise UserError("invalid value for 'deploy.vllm.lora': True needs a base model (student.name_or_path, "
                            "or a from-config student whose distill stage saved `base_model`)")
        if os.path.isdir(base):  # a local base gets the same loadability fixes as the merged export
            export_hf(base, os.path.join(out, "base"), name=f"{job.name}-base", max_new_tokens=job.max_new_tokens)
            base = os.path.join(out, "base")
        served, ranks = {}, []
        for lname, path in adapters.items():
            cfg_path = os.path.join(path, "adapter_config.json")
            if not os.path.exists(cfg_path):
                raise UserError(f"invalid value for 'deploy.vllm.lora_modules.{lname}': {path!r} "
                                "(allowed: a PEFT adapter directory with adapter_config.json)")
            with open(cfg_path) as f:
                ranks.append(int(json.load(f).get("r", 8)))
            dst = os.path.join(out, "adapters", lname)
            shutil.copytree(path, dst, dirs_exist_ok=True)
            served[lname] = dst
        return base, served, lora_rank_limit(ranks)

    def command(self, job: ExportJob, p: dict, out: str) -> list[str]:
        model = job.hf_dir
        extra: list[str] = []
        if self.opts["lora"]:
            model, served, rank = self._lora(job, out)
            extra = ["--enable-lora", "--lora-modules", *[f"{n}={d}" for n, d in served.items()],
                     "--max-loras", str(len(served)), "--max-lora-rank", str(rank)]
        cmd = ["vllm", "serve", model, "--served-model-name", job.name if not self.opts["lora"] else f"{job.name}-base",
               "--host", self.host, "--port", str(self.port), "--tensor-parallel-size", str(p["tensor_parallel_size"]),
               "--max-model-len", str(p["max_model_len"]), "--dtype", p["dtype"],
               "--gpu-memory-utilization", str(p["gpu_memory_utilization"]), "--generation-config", "auto", *extra]
        if p["quantization"]:
            cmd += ["--quantization", p["quantization"]]
        return cmd

    def build(self, job: ExportJob) -> dict:
        out = job.ctx.local_dir(VLLM_DIR)
        p = self.params(job)
        cmd = self.command(job, p, out)
        # vLLM reads its API key from VLLM_API_KEY; pass Stratos' key variable through when it is set
        env = {"VLLM_API_KEY": f'"${{{self.api_key_env}:-${{VLLM_API_KEY:-}}}}"'}
        script = ["#!/usr/bin/env bash", "set -euo pipefail", *[f"export {k}={v}" for k, v in env.items()],
                  f"exec {shlex.join(cmd)}", ""]
        sh = os.path.join(out, "serve.sh")
        with open(sh, "w") as f:
            f.write("\n".join(script))
        os.chmod(sh, 0o755)
        gpus = p["tensor_parallel_size"] if (p["gpu"] or "").lower() != "cpu" else 0
        with open(os.path.join(out, "serve.sbatch"), "w") as f:
            f.write(sbatch_script(cmd, job_name=f"stratos-serve-{job.name}", gpus=gpus, slurm=job.slurm, env=env))
        smoke = self.smoke(job, sh, cmd)
        with open(os.path.join(out, "vllm_args.json"), "w") as f:
            json.dump({"command": cmd, "params": p, "slurm": job.slurm, "lora": bool(self.opts["lora"])}, f, indent=2)
        with open(os.path.join(out, "smoke.json"), "w") as f:
            json.dump(smoke, f, indent=2)
        metrics = {"export/vllm_tensor_parallel": p["tensor_parallel_size"],
                   "export/vllm_max_model_len": p["max_model_len"], "export/vllm_smoke_ran": int(smoke["ran"])}
        if smoke["ran"]:
            metrics["export/vllm_smoke_ok"] = int(smoke["ok"])
        return metrics

    def smoke(self, job: ExportJob, script: str, cmd: list[str]) -> dict:
        if importlib.util.find_spec("vllm") is None:
            return {"ran": False, "ok": None, "reason": "vllm is not importable here; serve.sh was not started"}
        served = cmd[cmd.index("--served-model-name") + 1]
        return smoke_test(["bash", script], f"http://{self.host}:{self.port}/v1", served,
                          timeout_s=float(self.opts["smoke_timeout_s"]),
                          env={self.api_key_env: os.environ.get(self.api_key_env, "")})

