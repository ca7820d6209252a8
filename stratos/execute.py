"""Execute the plan (the CLI's side, inside @hydra.main): plan, apply, run here or on the chosen server.

    execution = prepare(cfg, run_dir, overrides, is_multirun)   # plan in memory, recompose with decisions
    done = run_elsewhere(cfg, run_dir, execution)                # Slurm / cloud; None = run here

The decisions themselves (pins, values, origins, overrides) are `stratos.plan.decisions`; this module
composes configs and starts jobs, so it sits with the CLI above the stages.

Where the rest of the pipeline runs, for a server that is not this machine: the plan stage runs here
(seconds), then the same resolved command, every decision as an override and `planner.execute=false`:

  slurm   a submitit job on the row's partition (stratos/launch/slurm.py), time limit from the plan's
          training-time estimate plus a margin; the run directory is shared, so the job's stages land
          beside the plan and this process reads their manifests when the job ends;
  cloud   a SkyPilot task on the row's instance type and region (stratos/launch/sky.py), the run
          directory on a bucket (fsspec URL). The runnable check admits cloud rows only when SkyPilot
          reports the provider enabled.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from stratos.artifacts import Manifest
from stratos.plan.decisions import (DECISIONS_JSON, Decision, override_key, baseline_overrides, decisions, find_pins,
                                    overrides_of)

log = logging.getLogger("stratos")

PLANS_DIR = ".plans"  # under paths.output_root: the decisions each command was first given
DECIDED_ENV = "STRATOS_PLAN_OVERRIDES"  # set for the processes a run starts (DDP ranks): apply, do not re-plan


@dataclass
class Execution:
    cfg: DictConfig  # the config the later stages run with
    run_dir: str
    decisions: list[Decision]
    overrides: list[str]  # what was appended to the user's overrides (planned values + planner.pinned)
    selected: dict  # plan.json's "selected"
    command_key: str = ""  # the user's command (its composed config), for re-runs


def default_run_dir(cfg: DictConfig) -> str:
    """hydra.run.dir's default pattern (conf/config.yaml) evaluated for `cfg`."""
    return os.path.join(str(cfg.paths.output_root), str(cfg.exp_name), f"seed{cfg.seed}")


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose

    return compose(config_name="config", overrides=overrides)


def _command_key(cfg: DictConfig) -> str:
    """The user's command, as the config it composes (the calibration history is not part of it)."""
    from stratos import artifacts

    return artifacts.config_hash(OmegaConf.to_container(cfg, resolve=True))


def _index_url(cfg: DictConfig, key: str) -> str:
    from stratos import artifacts

    return artifacts.join(str(cfg.paths.output_root), PLANS_DIR, f"{key}.json")


def prepare(cfg: DictConfig, run_dir: str, overrides: list[str], is_multirun: bool) -> Execution:
    """Plan in memory, apply the plan to every decision the user did not pin, and recompose.

    The run directory follows the applied config (its name says which student trains) unless the user
    set hydra.run.dir or this is a sweep job. The same command run again (pipeline.resume, the default)
    takes the decisions it was first given, so it reuses and resumes its stages even after later runs
    moved the calibration; `pipeline.resume=false` plans anew."""
    from stratos import artifacts
    from stratos.pipeline import process_rank
    from stratos.plan.calibration import Calibration
    from stratos.plan.planner import plan

    user_overrides = [o for o in overrides if override_key(o) != "planner.pinned"]
    default_dir = not is_multirun and os.path.abspath(run_dir) == os.path.abspath(default_run_dir(cfg))
    if process_rank() > 0 and os.environ.get(DECIDED_ENV):  # a DDP rank this run started: decisions made
        extra = json.loads(os.environ[DECIDED_ENV])
        applied = _compose(user_overrides + extra)
        return Execution(applied, default_run_dir(applied) if default_dir else run_dir, [], extra, {})
    key = _command_key(cfg)
    index = _index_url(cfg, key)
    if bool(cfg.pipeline.resume) and artifacts.exists(index):
        old = artifacts.read_json(index)
        if old.get("version") == 1 and (not default_dir or artifacts.exists(old["run_dir"])):
            applied = _compose(user_overrides + old["overrides"])
            os.environ[DECIDED_ENV] = json.dumps(old["overrides"])
            log.info("plan: the decisions this command was first given (%s; pipeline.resume=false plans anew)",
                     index)
            return Execution(applied, old["run_dir"] if default_dir else run_dir,
                             [Decision(**d) for d in old["decisions"]], old["overrides"], old["selected"], key)
    base = baseline_overrides(overrides)
    pins = find_pins(overrides, cfg, _compose(base) if base is not None else None)
    user = OmegaConf.merge(cfg, {"planner": {"pinned": pins}})
    result = plan(user)
    ds = decisions(user, result.json, pins, Calibration.load(user.planner.history))
    extra = overrides_of(ds) + [f"planner.pinned=[{','.join(pins)}]"]
    applied = _compose(user_overrides + extra)
    os.environ[DECIDED_ENV] = json.dumps(extra)
    return Execution(applied, default_run_dir(applied) if default_dir else run_dir, ds, extra,
                     result.json["selected"], key)


def write_decisions(run_dir: str, ex: Execution, cfg: DictConfig) -> None:
    """decisions.json in the run directory, and the command's entry in `<output_root>/.plans/`."""
    from stratos import artifacts

    record = {"version": 1, "decisions": [d.as_dict() for d in ex.decisions], "overrides": ex.overrides,
              "selected": ex.selected, "run_dir": run_dir}
    artifacts.write_json(artifacts.join(run_dir, DECISIONS_JSON), record)
    artifacts.write_json(_index_url(cfg, ex.command_key), record)


def _rest(cfg: DictConfig) -> list[str]:
    from stratos.pipeline import stage_order

    return [s for s in stage_order(cfg) if s != "plan"]


def run_elsewhere(cfg: DictConfig, run_dir: str, execution) -> dict[str, Manifest] | None:
    """Plan here, the other stages on the chosen server; the manifests of all when it is done."""
    from hydra.core.hydra_config import HydraConfig

    from stratos.launch.command import stratos_command
    from stratos.pipeline import load_done, run_pipeline

    sel = execution.selected
    rest = _rest(cfg)
    run_pipeline(OmegaConf.merge(cfg, {"pipeline": {"stages": ["plan"]}}), run_dir)
    if not rest:
        return load_done(cfg, run_dir)
    user = [o for o in HydraConfig.get().overrides.task if not o.startswith(("hydra.", "planner.execute="))]
    command = stratos_command(user + execution.overrides, run_dir, rest)
    hours = float(sel["estimates"]["train_hours"])
    row = {"name": sel["server"], "provider": sel["provider"], "region": sel["region"],
           "partition": sel.get("partition"), "gpu": sel["gpu"].rsplit("x", 1)[0],
           "gpu_count": int(sel["estimates"]["n_gpus"])}
    if sel["launcher"] == "slurm":
        from stratos.launch.slurm import submit, wait

        job = submit(row, command, hours, OmegaConf.to_container(cfg.servers.slurm, resolve=True),
                     os.path.join(run_dir, ".submitit"))
        log.info("plan: the other stages run on %s as Slurm job %s", sel["server"], job.job_id)
        state, rc = wait(job)
        log.info("plan: Slurm job %s ended %s", job.job_id, state)
    else:
        from stratos.launch.sky import launch, sky_task

        task = sky_task(row, command, run_dir, str(cfg.servers.pricing))
        launch(task, cluster_name=f"stratos-{os.path.basename(run_dir)}", dry_run=False)
    return load_done(cfg, run_dir)
