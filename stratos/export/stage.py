"""Export stage: the distilled student as deployable artifacts.

Inputs: distill (outputs["model"]: merged HF checkpoint dir; optional "adapter", "base_model"),
data (test rows for parity prompts and int8 grading), plan when it ran (plan.json "selected").
Always writes export/hf/ (loadable by transformers 4.x/5.x, vLLM, stratos.serve); then the deploy
target (`cfg.deploy._target_`: OnnxTarget or VllmTarget) adds its own files and metrics.

Outputs: hf/, onnx/ or vllm/, export.json (everything the report shows under "deploy").
Serving is not started here (a stage must finish for its manifest to be written): with
serve.enabled=true the CLI calls `stratos.serve.launch.serve_export` after the pipeline.
"""

from __future__ import annotations

import logging
import time

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stratos.artifacts import Manifest, StageContext, local_path, read_json, read_jsonl
from stratos.data.outputs import TEST_JSONL
from stratos.distill.outputs import MODEL_DIR
from stratos.export.hf import export_hf
from stratos.export.outputs import EXPORT_JSON, HF_DIR
from stratos.plan.outputs import PLAN_JSON
from stratos.export.job import ExportJob

log = logging.getLogger("stratos")


def _test_rows(ctx: StageContext) -> list[dict]:
    data = ctx.inputs.get("data")
    return read_jsonl(data.path(TEST_JSONL)) if data is not None else []


def _plan(ctx: StageContext) -> dict:
    """plan.json's "selected" entry, or {} (plan not run, or written in a shape we do not know)."""
    plan = ctx.inputs.get("plan")
    if plan is None or PLAN_JSON not in plan.outputs:
        return {}
    try:
        selected = read_json(plan.outputs[PLAN_JSON]).get("selected")
    except (OSError, ValueError) as e:
        log.warning("export: cannot read plan.json (%s); using config and model defaults", e)
        return {}
    return selected if isinstance(selected, dict) else {}


def _task(cfg: DictConfig):
    if cfg.get("task") is None:
        return None
    from stratos.tasks import build_task

    return build_task(cfg.task)


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    t0 = time.time()
    distill = ctx.input("distill")
    src = local_path(distill.path(MODEL_DIR))
    task = _task(cfg)
    max_new = int(getattr(task, "max_new_tokens", 0) or 256)
    name = cfg.deploy.get("served_model_name") or cfg.student.name
    hf_dir = ctx.local_dir(HF_DIR)
    hf_meta = export_hf(src, hf_dir, name=name, max_new_tokens=max_new)
    rows = _test_rows(ctx)
    slurm = OmegaConf.to_container(cfg.servers.slurm, resolve=True) if cfg.get("servers") is not None else {}
    job = ExportJob(ctx=ctx, hf_dir=hf_dir, name=name, questions=[r["question"] for r in rows], rows=rows,
                    task=task, max_new_tokens=max_new, plan=_plan(ctx), slurm=slurm or {},
                    distill_outputs=dict(distill.outputs), student_name_or_path=cfg.student.get("name_or_path"))
    # a target that writes a server launch (vllm) binds it where the `serve` group says
    target = instantiate(cfg.deploy, _convert_="all", host=cfg.serve.host, port=cfg.serve.port,
                         api_key_env=cfg.serve.api_key_env)
    metrics = {"export/n_params": hf_meta["n_params"], **target.build(job)}
    metrics["export/seconds"] = round(time.time() - t0, 3)
    ctx.write_json(EXPORT_JSON, {"target": cfg.deploy.name, "name": name, "hf": hf_meta, "metrics": metrics,
                                   "plan_server": job.plan.get("server")})
    log.info("export: %s target written to %s", cfg.deploy.name, ctx.out_dir)
    return ctx.manifest(metrics=metrics)
