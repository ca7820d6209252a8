"""`deploy` group (owner: stratos/export/): the deployable artifacts and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from stratos.config.choices import ExportTarget


@dataclass
class VllmConfig:
    """`vllm serve` settings (stratos/export/vllm_target.py); 0 / auto => from the plan or the model."""

    tensor_parallel_size: int = 0  # 0 => the plan's GPU count, reduced until the heads split evenly
    max_model_len: int = 0  # 0 => the model's context
    dtype: str = "auto"  # auto => bfloat16 on GPUs with bf16, float16 on older ones
    gpu_memory_utilization: float = 0.9
    lora: bool = False  # serve LoRA adapter(s) on the base model instead of the merged checkpoint
    lora_modules: dict[str, str] = field(default_factory=dict)  # extra adapters: served name -> local dir
    smoke_timeout_s: float = 600.0  # smoke test (only when vllm is importable): wait for the server


@dataclass
class DeployConfig:
    """Export settings (stratos/export/): the deployable artifacts and the checks made on them."""

    _target_: str = MISSING
    name: ExportTarget = MISSING
    onnx_opset: int = 17
    onnx_dynamo: bool = False
    kv_cache: bool = True
    quantize_int8: bool = False
    parity_tol: float = 1e-4
    parity_prompts: int = 8  # test prompts for the logit/greedy parity checks
    bench_prompts: int = 8  # quick ONNX-vs-torch speed figures in the manifest (0 => skip)
    bench_new_tokens: int = 32
    quant_eval_n: int = 32  # test rows graded with fp32 and int8 graphs (accuracy change)
    served_model_name: Optional[str] = None  # None => the student's name
    threads: int = 1  # ONNX Runtime / torch intra-op threads of the export's checks and speed figures
    vllm: VllmConfig = field(default_factory=VllmConfig)
    # Deprecated for one release: these keys moved to `serve.*` and `constraints.*` (stratos/config/__init__.py
    # `move_deprecated_keys` moves a value set here and warns once). Null = not set.
    serve: Optional[bool] = None
    host: Optional[str] = None
    port: Optional[int] = None
    backend: Optional[str] = None
    api_key_env: Optional[str] = None
    max_tokens: Optional[int] = None
    max_concurrency: Optional[int] = None
    max_queue: Optional[int] = None
    max_body_bytes: Optional[int] = None
    budget_usd: Optional[float] = None
    deadline_h: Optional[float] = None
    latency_slo_ms: Optional[float] = None
    min_accuracy: Optional[float] = None
    qps: Optional[float] = None
