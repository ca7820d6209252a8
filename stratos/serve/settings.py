"""Server settings: limits, auth, binding and the model path, checked at start-up (bad values -> UserError).

`ServeSettings` is the schema of the `serve` config group, defined with the other schemas in
stratos/config/serve.py, so `python -m stratos ... serve.enabled=true serve.port=9000` and
`python -m stratos.serve --port 9000` fill the same dataclass. Kept free of heavy imports, so
`python -m stratos.serve` rejects bad arguments in well under a second.
"""

from __future__ import annotations

import os
from stratos.config import Backend, ServeSettings
from stratos.errors import UserError

__all__ = ["Backend", "ServeSettings", "api_key_from_env", "resolve_model_dir"]


def api_key_from_env(var: str | None) -> str | None:
    """The API key held by environment variable `var` (None when unset or empty: no auth)."""
    if not var:
        return None
    return os.environ.get(var) or None


def resolve_model_dir(path: str, backend: str) -> tuple[str, str]:
    """(directory, backend) for `path`: an ONNX export dir, an HF checkpoint, or an export stage dir."""
    if backend not in ("auto", "onnx", "torch"):
        raise UserError(f"invalid value for 'backend': {backend!r} (allowed: auto, onnx, torch)")
    if not os.path.isdir(path):
        raise UserError(f"invalid value for 'model': {path!r} (allowed: an existing model directory)")
    candidates = {"onnx": [path, os.path.join(path, "onnx")], "torch": [path, os.path.join(path, "hf")]}
    has = {"onnx": lambda d: os.path.exists(os.path.join(d, "stratos_onnx.json")),
           "torch": lambda d: os.path.exists(os.path.join(d, "config.json")) and any(
               f.endswith((".safetensors", ".bin")) for f in os.listdir(d))}
    for b in (["onnx", "torch"] if backend == "auto" else [backend]):
        for d in candidates[b]:
            if os.path.isdir(d) and has[b](d):
                return d, b
    wanted = "an ONNX export (stratos_onnx.json) or an HF checkpoint" if backend == "auto" else (
        "an ONNX export with stratos_onnx.json" if backend == "onnx" else "an HF checkpoint with weights")
    raise UserError(f"invalid value for 'model': {path!r} holds no model for backend {backend} (allowed: {wanted})")
