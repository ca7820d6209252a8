"""Serve the export stage's artifacts after a pipeline run (serve.enabled=true).

The export stage cannot serve itself: a stage's manifest is written when it returns, and a server
runs until stopped. So the CLI, after `run_pipeline`, calls

    serve_export(done["export"], cfg.serve, name=cfg.deploy.served_model_name)

which blocks until SIGTERM/SIGINT, then drains in-flight requests and returns.
"""

from __future__ import annotations

from dataclasses import replace

from omegaconf import OmegaConf

from stratos.artifacts import Manifest, local_path
from stratos.errors import UserError
from stratos.export.outputs import HF_DIR, ONNX_DIR
from stratos.serve.settings import ServeSettings, api_key_from_env


def model_dir_for(export: Manifest, backend: str) -> tuple[str, str]:
    """(directory, backend) to serve: the ONNX graph when exported (auto/onnx), else the HF checkpoint."""
    if backend in ("auto", "onnx") and ONNX_DIR in export.outputs:
        return local_path(export.outputs[ONNX_DIR]), "onnx"
    if backend == "onnx":
        raise UserError("invalid value for 'serve.backend': 'onnx' but the export has no ONNX graph "
                        "(allowed: torch or auto, or deploy=onnx)")
    return local_path(export.path(HF_DIR)), "torch"


def settings_from_config(serve) -> ServeSettings:
    """The `serve` config group as ServeSettings, with the API key read from `serve.api_key_env`."""
    settings = serve if isinstance(serve, ServeSettings) else OmegaConf.to_object(serve)
    if settings.api_key is not None:
        raise UserError("invalid value for 'serve.api_key': a key in a config (allowed: null; put the key in the "
                        "environment variable named by serve.api_key_env)")
    return replace(settings, api_key=api_key_from_env(settings.api_key_env)).validate(prefix="serve.")


def serve_export(export: Manifest, serve, name: str | None = None) -> None:
    """Blocking: serve `export`'s model with the `serve` group's settings (cfg.serve)."""
    from stratos.serve.engine import load_engine
    from stratos.serve.server import serve as run_server

    settings = settings_from_config(serve)
    path, backend = model_dir_for(export, str(settings.backend))
    engine = load_engine(path, backend, threads=int(settings.threads), name=name)
    run_server(engine, settings)
