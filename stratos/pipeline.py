"""Chain the stages plan -> data -> distill -> evaluate -> export -> report through artifacts.

Each stage is `stratos/<stage>/stage.py: run(cfg, ctx) -> Manifest`. A stage's identity is a
hash of the config keys it depends on plus its inputs' hashes; a stage whose manifest carries
that hash is reused, one whose directory holds a different hash is wiped and redone, and one
interrupted mid-way (same hash, no manifest) runs again in place — the distill stage resumes
from its last Lightning checkpoint there. `pipeline.stages` picks a subset; the stages those
need are reused or run first.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass

import fsspec
from omegaconf import DictConfig, OmegaConf

from stratos import artifacts
from stratos.artifacts import Manifest, StageContext
from stratos.errors import find_user_error

log = logging.getLogger("stratos")

HASH_FILE = ".config_hash"


@dataclass(frozen=True)
class StageSpec:
    module: str
    keys: tuple[str, ...]  # config keys whose values define the stage's result
    needs: tuple[str, ...] = ()  # stages that must be done first
    uses: tuple[str, ...] = ()  # stages read when present (never forced to run)
    cached: bool = True  # report always re-runs (it is cheap and reflects the current state)
    multi_teacher_keys: tuple[str, ...] = ()  # hashed only when `teachers` is set: single-teacher hashes unchanged
    multi_teacher_uses: tuple[str, ...] = ()  # read when present, only when `teachers` is set


SPECS: dict[str, StageSpec] = {
    # plan re-runs every time (seconds): it reads the calibration history, which changes between runs
    "plan": StageSpec("stratos.plan.stage", ("servers", "teacher", "student", "strategy", "deploy", "constraints",
                                             "planner", "task", "trainer.batch_size", "trainer.max_steps"),
                      cached=False),
    "data": StageSpec("stratos.data.stage", ("task",)),
    "distill": StageSpec("stratos.distill.stage", ("teacher", "student", "strategy", "trainer", "seed"), ("data",),
                         # several teachers: route=auto prices each teacher's work on the run's server
                         # (stratos/distill/route_budget.py: plan.json's run estimate, else this machine)
                         multi_teacher_keys=("teachers", "route", "servers.local_price_hour",
                                             "servers.api_usd_per_mtok"), multi_teacher_uses=("plan",)),
    "evaluate": StageSpec("stratos.evaluate.stage", ("evaluate",), ("data", "distill")),
    "export": StageSpec("stratos.export.stage", ("deploy", "servers.slurm", "serve.host", "serve.port",
                                                 "serve.api_key_env"), ("data", "distill"), ("plan",)),
    "report": StageSpec("stratos.report.stage", (), (), ("plan", "data", "distill", "evaluate", "export"),
                        cached=False),
}
ORDER = ("plan", "data", "distill", "evaluate", "export", "report")


def stage_order(cfg: DictConfig) -> list[str]:
    """Requested stages plus everything they need, in pipeline order."""
    wanted = list(cfg.pipeline.stages)
    closure: set[str] = set()

    def add(name: str) -> None:
        if name not in closure:
            closure.add(name)
            for dep in SPECS[name].needs:
                add(dep)

    for s in wanted:
        add(s)
    return [s for s in ORDER if s in closure]


def _select(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def stage_hash(cfg: DictConfig, name: str, inputs: dict[str, Manifest]) -> str:
    spec = SPECS[name]
    keys = spec.keys + (spec.multi_teacher_keys if _select(cfg, "teachers") else ())
    return artifacts.config_hash({k: _select(cfg, k) for k in keys}, {k: m.config_hash for k, m in inputs.items()})


def stage_inputs(cfg: DictConfig, name: str, done: dict[str, Manifest]) -> dict[str, Manifest]:
    """The finished stages `name` reads: what it needs and what it uses when present."""
    spec = SPECS[name]
    uses = spec.uses + (spec.multi_teacher_uses if _select(cfg, "teachers") else ())
    return {k: done[k] for k in (*spec.needs, *uses) if k in done}


def _prepare_dir(ctx: StageContext, resume: bool) -> None:
    """Wipe a stale stage dir (other config); keep an interrupted one of this config (to resume)."""
    fs, path = fsspec.core.url_to_fs(ctx.out_dir)
    hash_path = f"{path}/{HASH_FILE}"
    if fs.exists(path):
        same = resume and fs.exists(hash_path) and fs.cat_file(hash_path).decode().strip() == ctx.config_hash
        if not same:
            fs.rm(path, recursive=True)
    fs.makedirs(path, exist_ok=True)
    with artifacts.atomic_open(f"{ctx.out_dir}/{HASH_FILE}") as f:
        f.write(ctx.config_hash)


def run_stage(cfg: DictConfig, name: str, run_dir: str, done: dict[str, Manifest]) -> tuple[Manifest, bool]:
    """Run (or reuse) one stage; returns (manifest, reused)."""
    spec = SPECS[name]
    inputs = stage_inputs(cfg, name, done)
    h = stage_hash(cfg, name, inputs)
    ctx = StageContext(run_dir=run_dir, stage=name, config_hash=h, inputs=inputs)
    manifest_url = artifacts.join(ctx.out_dir, artifacts.MANIFEST_NAME)
    if spec.cached and cfg.pipeline.resume and artifacts.exists(manifest_url):
        old = Manifest.load(manifest_url)
        if old.config_hash == h:
            log.info("stage %-8s reused (%s)", name, h)
            return old, True
    _prepare_dir(ctx, resume=bool(cfg.pipeline.resume))
    log.info("stage %-8s running -> %s", name, ctx.out_dir)
    t0 = time.time()
    try:
        manifest = importlib.import_module(spec.module).run(cfg, ctx)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        # the input was wrong, so nothing in this directory is worth resuming from
        fs, path = fsspec.core.url_to_fs(ctx.out_dir)
        fs.rm(path, recursive=True)
        raise user_error from None
    manifest.seconds = round(time.time() - t0, 3)
    artifacts.write_json(manifest_url, artifacts.asdict_manifest(manifest))  # last: marks the stage done
    log.info("stage %-8s done in %.1f s", name, manifest.seconds)
    return manifest, False


def load_done(cfg: DictConfig, run_dir: str) -> dict[str, Manifest]:
    """Manifests of stages already finished in `run_dir` (used by stages outside the requested subset)."""
    done = {}
    for name in ORDER:
        url = artifacts.join(run_dir, name, artifacts.MANIFEST_NAME)
        if artifacts.exists(url):
            done[name] = Manifest.load(url)
    return done


def process_rank() -> int:
    """This process's rank in a multi-process (DDP) training job; 0 when there is one process.

    Lightning re-launches the whole CLI for ranks > 0 (LOCAL_RANK), and a multi-task Slurm job starts
    it once per task (SLURM_PROCID with SLURM_NTASKS > 1).
    """
    rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        rank = max(rank, int(os.environ.get("SLURM_PROCID", "0") or 0))
    return rank


def _wait_for_manifest(cfg: DictConfig, name: str, run_dir: str, done: dict[str, Manifest],
                       timeout_s: float = 6 * 3600) -> Manifest:
    inputs = stage_inputs(cfg, name, done)
    h = stage_hash(cfg, name, inputs)
    url = artifacts.join(run_dir, name, artifacts.MANIFEST_NAME)
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if artifacts.exists(url):
            m = Manifest.load(url)
            if m.config_hash == h:
                return m
        time.sleep(1.0)
    raise TimeoutError(f"rank {process_rank()}: rank 0 never finished stage '{name}'")


def run_follower(cfg: DictConfig, run_dir: str) -> dict[str, Manifest]:
    """Ranks > 0 of a DDP job: take rank 0's finished stages, join the distill training, write nothing.

    Only rank 0 writes manifests, so a stage is never marked done by a process that did not save
    its outputs (the model is saved on the global-zero rank only).
    """
    done: dict[str, Manifest] = {}
    for name in stage_order(cfg):
        if name == "distill":
            spec = SPECS[name]
            inputs = stage_inputs(cfg, name, done)
            ctx = StageContext(run_dir=run_dir, stage=name, config_hash=stage_hash(cfg, name, inputs), inputs=inputs)
            importlib.import_module(spec.module).run(cfg, ctx)
            return done
        done[name] = _wait_for_manifest(cfg, name, run_dir, done)
    return done


def run_pipeline(cfg: DictConfig, run_dir: str) -> dict[str, Manifest]:
    """Run the requested stages in order; returns every stage's manifest."""
    if process_rank() > 0:
        return run_follower(cfg, run_dir)
    done: dict[str, Manifest] = {}
    previous = load_done(cfg, run_dir)
    order = stage_order(cfg)
    for name in ORDER:
        if name in order:
            done[name], _ = run_stage(cfg, name, run_dir, done)
        elif name in previous and all(previous[name].inputs.get(k) == done[k].config_hash
                                      for k in previous[name].inputs if k in done):
            done[name] = previous[name]  # finished earlier and still consistent: visible to later stages
    if "report" in done:  # last, explicit: this run's measurements calibrate the next plans
        from stratos.plan.record import record_run

        record_run(cfg, run_dir, done)
    return done


def validate_pipeline(p) -> None:
    """`pipeline.stages` names known stages (UserError, one line)."""
    from stratos.errors import bad_value

    bad = [x for x in p.stages if x not in ORDER]
    if bad or not p.stages:
        raise bad_value("pipeline.stages", list(p.stages), f"a non-empty list from {', '.join(ORDER)}")
