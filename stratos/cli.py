"""`python -m stratos +task=mahjong [overrides]` — the only @hydra.main.

Thin on purpose: validate the composed config, run the pipeline, return the metric sweeps
optimise. User mistakes (UserError, and Hydra's own config errors) print one line and exit 2
with no traceback and no half-written run directory.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from stratos.checks import validate
from stratos.config import CONFIG_PATH, register_configs
from stratos.errors import UserError

log = logging.getLogger("stratos")

_task_started = False  # set once Hydra composed the config and called us: later exits are not config errors


def _remove_if_empty(run_dir: str, root: str) -> None:
    """Remove `run_dir` and its empty parents up to `root` (never a directory holding anything)."""
    path = os.path.abspath(run_dir)
    root = os.path.abspath(root)
    while path.startswith(root + os.sep) and os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)
        path = os.path.dirname(path)


def _remove_unfinished_run(run_dir: str, root: str) -> None:
    """After a user error: drop the run dir if no stage in it ever finished (else keep the finished ones)."""
    import shutil

    entries = os.listdir(run_dir) if os.path.isdir(run_dir) else []
    if all(e == "config.yaml" or not os.path.exists(os.path.join(run_dir, e, "manifest.json")) for e in entries):
        shutil.rmtree(run_dir, ignore_errors=True)
        _remove_if_empty(os.path.dirname(run_dir), root)


def _run_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


def _setup_threads(cfg: DictConfig) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-file load/save bars drown the stage log lines
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(int(cfg.trainer.num_threads))


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    global _task_started
    _task_started = True
    run_dir = _run_dir()
    try:
        validate(cfg)
    except UserError as e:
        _remove_if_empty(run_dir, cfg.paths.output_root)
        print(f"stratos: error: {e}", file=sys.stderr)
        sys.exit(2)
    from stratos.artifacts import write_text
    from stratos.pipeline import run_pipeline

    _setup_threads(cfg)
    write_text(os.path.join(run_dir, "config.yaml"), OmegaConf.to_yaml(cfg, resolve=True))
    log.info("run dir: %s", run_dir)
    try:
        done = run_pipeline(cfg, run_dir)
        if cfg.serve.enabled and "export" in done:  # after the manifests are written: serving blocks until SIGTERM
            from stratos.serve.launch import serve_export

            serve_export(done["export"], cfg.serve, name=cfg.deploy.served_model_name or cfg.student.name)
    except UserError as e:
        _remove_unfinished_run(run_dir, cfg.paths.output_root)
        print(f"stratos: error: {e}", file=sys.stderr)
        sys.exit(2)
    ev = done.get("evaluate")
    return ev.metrics.get("evaluate/test/accuracy") if ev else None


RENAMED_GROUPS = {"cloud": "servers"}  # deprecated group name -> its new name (accepted for one release)


def rename_deprecated_overrides(argv: list[str]) -> list[str]:
    """`cloud=local`, `cloud.pricing=spot`, `+cloud...` -> the `servers` group, with a warning each."""
    out = []
    for arg in argv:
        prefix = arg[: len(arg) - len(arg.lstrip("+~"))]
        body = arg[len(prefix):]
        for old, new in RENAMED_GROUPS.items():
            if body.startswith((f"{old}=", f"{old}.")):
                print(f"stratos: warning: the '{old}' group is now '{new}' ('{old}' will be removed in the next "
                      f"release): read {arg!r} as {prefix + new + body[len(old):]!r}", file=sys.stderr)
                body = new + body[len(old):]
        out.append(prefix + body)
    return out


def acme_bridge(argv: list[str]) -> list[str] | None:
    """`strategy=acme` (ACME inside the distillation config, deprecated): the ACME application's argv."""
    if "strategy=acme" not in argv:
        return None
    print("stratos: warning: strategy=acme is deprecated; ACME is its own application: "
          "python -m stratos.acme [--out DIR] [overrides] (running it now)", file=sys.stderr)
    root = next((a.split("=", 1)[1] for a in argv if a.startswith("paths.output_root=")), "outputs")
    rest = [a for a in argv if not a.startswith(("paths.output_root=", "-", "+task=", "strategy=", "cloud=edge"))]
    return ["--out", f"{root}/acme", *rest]


def main() -> None:
    from stratos.errors import describe_config_error

    bridged = acme_bridge(sys.argv[1:])
    if bridged is not None:
        from stratos.acme.__main__ import main as acme_main

        sys.exit(acme_main(bridged))
    sys.argv[1:] = rename_deprecated_overrides(sys.argv[1:])
    register_configs()  # the structured schemas (base_<group>) the YAML options extend
    # Hydra then raises config-composition errors (unknown option, bad type or choice, bad override)
    # instead of printing them over several lines; they are user mistakes: one line and exit 2.
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except SystemExit as e:
        if not _task_started and e.code == 1:  # Hydra's own usage errors (already printed)
            sys.exit(2)
        raise
    except Exception as e:
        if _task_started or full_error == "1":  # a bug in a stage: keep its traceback
            raise
        print(f"stratos: error: {describe_config_error(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

