"""`python -m stratos +task=mahjong [overrides]` — the only @hydra.main.

Thin on purpose: validate the composed config, run the pipeline, return the metric sweeps
optimise. User mistakes (UserError, and Hydra's own config errors) print one line and exit 2
with no traceback and no half-written run directory.
"""

from __future__ import annotations

import contextlib
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
RUN_FAILED = "stratos_run_failed"  # attribute set on an exception a run raised (see hydra_main)


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


def _executes_plan(cfg: DictConfig) -> bool:
    from stratos.pipeline import stage_order

    return bool(cfg.planner.execute) and "plan" in stage_order(cfg)


def _execute_plan(cfg: DictConfig, run_dir: str):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from stratos.execute import prepare

    hc = HydraConfig.get()
    execution = prepare(cfg, run_dir, list(hc.overrides.task), hc.mode == RunMode.MULTIRUN)
    if execution.run_dir != run_dir:  # named after the applied config: drop Hydra's (still empty) one
        _remove_if_empty(run_dir, cfg.paths.output_root)
        os.makedirs(execution.run_dir, exist_ok=True)
    return execution


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    global _task_started
    _task_started = True
    try:
        return run_task(cfg)
    except Exception as e:
        # On a submitit launcher this runs in the job, and Hydra raises the job's exception again in the
        # launching process, where nothing ran and _task_started is False: the mark, pickled with the
        # exception, tells main() there that a run failed (keep the traceback), not the config.
        with contextlib.suppress(AttributeError, TypeError):
            setattr(e, RUN_FAILED, True)
        raise


def run_task(cfg: DictConfig) -> float | None:
    """The task: validate, execute the plan's decisions, run the pipeline (and serve); the test accuracy."""
    run_dir = _run_dir()
    execution = None
    try:
        validate(cfg)
        if _executes_plan(cfg):  # the plan decides what the user did not pin; validate what it decided
            execution = _execute_plan(cfg, run_dir)
            cfg, run_dir = execution.cfg, execution.run_dir
            validate(cfg)
    except UserError as e:
        _remove_if_empty(_run_dir(), cfg.paths.output_root)
        print(f"stratos: error: {e}", file=sys.stderr)
        sys.exit(2)
    from stratos.artifacts import write_text
    from stratos.pipeline import run_pipeline

    _setup_threads(cfg)
    write_text(os.path.join(run_dir, "config.yaml"), OmegaConf.to_yaml(cfg, resolve=True))
    log.info("run dir: %s", run_dir)
    try:
        if execution is not None and execution.decisions:
            from stratos.execute import write_decisions
            from stratos.plan.decisions import summary

            write_decisions(run_dir, execution, cfg)
            log.info("plan executed (decisions.json):\n%s", summary(execution.decisions))
        done = None
        if execution is not None and execution.selected.get("launcher") not in (None, "local"):
            from stratos.execute import run_elsewhere

            done = run_elsewhere(cfg, run_dir, execution)
        if done is None:
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
# deprecated option -> its equivalent: cloud=edge was the local machine plus ACME's device classes
# (those are ACME's own config now, conf/acme.yaml), so for the planner it is servers=local
RENAMED_OPTIONS = {"servers=edge": "servers=local"}


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
        if body in RENAMED_OPTIONS:
            print(f"stratos: warning: {body} is deprecated (its device classes moved to python -m stratos.acme); "
                  f"read as {RENAMED_OPTIONS[body]}, the same servers", file=sys.stderr)
            body = RENAMED_OPTIONS[body]
        out.append(prefix + body)
    return out


def acme_bridge(argv: list[str]) -> list[str] | None:
    """`strategy=acme` (ACME inside the distillation config, deprecated): the ACME application's argv.

    One warning line shows the equivalent `python -m stratos.acme` command, keys already renamed. The
    run directory is kept: `hydra.run.dir=D` -> `--out D` (ACME writes D/acme/, as the old stage did),
    else `<paths.output_root>/acme`. The old form ran ACME once per command, so a sweep is refused.
    """
    if "strategy=acme" not in argv:
        return None
    import shlex

    from stratos.acme.__main__ import translate_old_overrides

    if any(a in ("-m", "--multirun") for a in argv):
        print("stratos: error: strategy=acme is deprecated and cannot be swept (-m): run python -m stratos.acme "
              "[--out DIR] [overrides] once per setting", file=sys.stderr)
        sys.exit(2)

    def value(key: str) -> str | None:
        return next((a.split("=", 1)[1] for a in argv if a.startswith(f"{key}=")), None)

    out = value("hydra.run.dir") or f"{value('paths.output_root') or 'outputs'}/acme"
    rest = [a for a in argv if not a.startswith(("paths.output_root=", "hydra.run.dir=", "-", "+task=", "strategy=",
                                                 "cloud=edge", "servers=edge"))]
    new = ["--out", out, *translate_old_overrides(rest, warn=False)]
    print(f"stratos: warning: strategy=acme is deprecated; run python -m stratos.acme {shlex.join(new)} "
          "(running it now)", file=sys.stderr)
    return new


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
        from stratos.sweep import JOB_ERRORS, job_user_error

        job_error = job_user_error(e)  # a submitit sweep job that stopped on a user mistake: its own line
        if job_error is None and (_task_started or getattr(e, RUN_FAILED, False) or full_error == "1"
                                  or type(e).__name__ in JOB_ERRORS):
            raise  # a bug in a stage, here or in a sweep job (or a job killed): keep its traceback
        print(f"stratos: error: {job_error or describe_config_error(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

