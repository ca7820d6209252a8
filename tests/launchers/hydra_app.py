"""A minimal Hydra app for launcher tests: each job trains tests/resilience/tiny_train.py's LM.

    python tests/launchers/hydra_app.py -m seed=0,1 hydra/launcher=stratos_slurm hydra.sweep.dir=DIR

Its config carries the real `servers.slurm` schema (stratos.config.SlurmConfig) and
`trainer.devices`, so the conf/hydra/launcher presets resolve exactly as under `python -m stratos`,
and conf/ is on the search path. Each job writes `<job dir>/final.json` (tiny_train) and
`<job dir>/job.json` (its Slurm/submitit identity) and returns the final eval loss.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from stratos.config import SlurmConfig

ROOT = Path(__file__).resolve().parents[2]
FAULTS_DIR = str(ROOT / "tests" / "resilience")


@dataclass
class Servers:
    slurm: SlurmConfig = field(default_factory=SlurmConfig)


@dataclass
class Trainer:
    devices: int = 1


@dataclass
class App:
    servers: Servers = field(default_factory=Servers)
    trainer: Trainer = field(default_factory=Trainer)
    seed: int = 0
    steps: int = 30
    step_sleep: float = 0.0
    hydra: dict = field(default_factory=lambda: {"searchpath": [f"file://{ROOT / 'conf'}"]})


ConfigStore.instance().store(name="app", node=App)


@hydra.main(version_base="1.3", config_path=None, config_name="app")
def app(cfg: DictConfig) -> float:
    if FAULTS_DIR not in sys.path:  # the job runs `python -m submitit.core._submit` from any cwd
        sys.path.insert(0, FAULTS_DIR)
    import tiny_train

    out = HydraConfig.get().runtime.output_dir
    env = {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                                          "SLURM_RESTART_COUNT", "SLURM_CPUS_PER_TASK", "SLURM_NTASKS")}
    with open(os.path.join(out, "job.json"), "w") as f:
        json.dump(env, f)
    rc = tiny_train.main([out, "--steps", str(cfg.steps), "--seed", str(cfg.seed),
                          "--step-sleep", str(cfg.step_sleep), "--devices", str(cfg.trainer.devices)])
    assert rc == 0
    with open(os.path.join(out, "final.json")) as f:
        return float(json.load(f)["eval_loss"])


if __name__ == "__main__":
    app()
