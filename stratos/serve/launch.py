"""Serve the export stage's artifacts after a pipeline run (deploy.serve=true).

The export stage cannot serve itself: a stage's manifest is written when it returns, and a server
runs until stopped. So the CLI, after `run_pipeline`, calls

    serve_export(done["export"], cfg.deploy)

which blocks until SIGTERM/SIGINT, then drains in-flight requests and returns.
"""

from __future__ import annotations

from stratos.artifacts import Manifest, local_path
from stratos.errors import UserError
from stratos.serve.settings import ServeSettings, api_key_from_env


def model_dir_for(export: Manifest, backend: str) -> tuple[str, str]:
    """(directory, backend) to serve: the ONNX graph when exported (auto/onnx), else the HF checkpoint."""
    if backend in ("auto", "onnx") and "onnx" in export.outputs:
        return local_path(export.outputs["onnx"]), "onnx"
    if backend == "onnx":
        raise UserError("invalid value for 'deploy.backend': 'onnx' but the export has no ONNX graph "
                        "(allowed: torch or auto, or deploy=onnx)")
    return local_path(export.path("hf")), "torch"


def settings_from_deploy(deploy) -> ServeSettings:
    return ServeSettings(host=str(deploy.host), port=int(deploy.port), api_key=api_key_from_env(deploy.api_key_env),
                         max_tokens=int(deploy.max_tokens), max_concurrency=int(deploy.max_concurrency),
                         max_queue=int(deploy.max_queue), max_body_bytes=int(deploy.max_body_bytes)).validate()


def serve_export(export: Manifest, deploy) -> None:
    """Blocking: serve `export`'s model with the limits in `deploy` (cfg.deploy)."""
    from stratos.serve.engine import load_engine
    from stratos.serve.server import serve

    if deploy.backend not in ("auto", "onnx", "torch"):
        raise UserError(f"invalid value for 'deploy.backend': {deploy.backend!r} (allowed: auto, onnx, torch)")
    settings = settings_from_deploy(deploy)
    path, backend = model_dir_for(export, str(deploy.backend))
    engine = load_engine(path, backend, threads=int(deploy.threads), name=deploy.get("served_model_name"))
    serve(engine, settings)
