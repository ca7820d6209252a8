"""conf/hydra/launcher presets: resources flow from cfg.servers.slurm / cfg.trainer into the sbatch script.

No cluster needed: the presets are composed with Hydra, the launcher is instantiated as Hydra
does, and submitit writes the very sbatch text it would submit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
import hydra_app  # noqa: E402,F401  (registers the "app" config)


def launcher_params(overrides: list[str], app: bool = True) -> dict:
    GlobalHydra.instance().clear()
    if app:
        ctx = initialize(version_base="1.3", config_path=None)
        name = "app"
    else:
        from stratos.config import register_configs

        register_configs()
        ctx = initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf"))
        name = "config"
    with ctx:
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        launcher = instantiate(cfg.hydra.launcher)  # what Hydra does before launch()
    GlobalHydra.instance().clear()
    return {**launcher.params, "_class": type(launcher).__name__}


def sbatch_text(params: dict, tmp_path) -> str:
    """The submission script for these launcher params (hydra_submitit_launcher's own mapping)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    ex = submitit.AutoExecutor(folder=str(tmp_path), cluster="slurm",
                               slurm_max_num_timeout=params["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    ex.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                            if k not in ("submitit_folder", "max_num_timeout", "_class")})
    return ex._executor._make_submission_file_text("python -m stratos", "uid")


def test_slurm_preset_takes_resources_from_the_config(tmp_path):
    p = launcher_params(["hydra/launcher=stratos_slurm", "servers.slurm.partition=gpu-long", "servers.slurm.account=lab",
                         "servers.slurm.qos=high", "servers.slurm.time_min=90", "servers.slurm.cpus_per_task=8",
                         "servers.slurm.mem_gb=64", "servers.slurm.signal_delay_s=300", "servers.slurm.max_requeue=5",
                         "servers.slurm.array_parallelism=4", "trainer.devices=2"])
    assert (p["partition"], p["account"], p["qos"], p["timeout_min"]) == ("gpu-long", "lab", "high", 90)
    assert (p["cpus_per_task"], p["mem_gb"], p["tasks_per_node"], p["gpus_per_node"]) == (8, 64, 2, None)
    assert (p["signal_delay_s"], p["max_num_timeout"], p["array_parallelism"]) == (300, 5, 4)
    text = sbatch_text(p, tmp_path)
    for line in ("--partition=gpu-long", "--account=lab", "--qos=high", "--time=90", "--cpus-per-task=8",
                 "--mem=64GB", "--ntasks-per-node=2", "--signal=USR2@300"):
        assert f"#SBATCH {line}" in text
    assert "--gpus-per-node" not in text


def test_slurm_preset_defaults_leave_choices_to_the_cluster(tmp_path):
    p = launcher_params(["hydra/launcher=stratos_slurm"])
    assert p["partition"] is None and p["cpus_per_task"] is None and p["mem_gb"] is None
    assert p["tasks_per_node"] == 1 and p["timeout_min"] == 60 and p["max_num_timeout"] == 3
    text = sbatch_text(p, tmp_path)
    assert "--partition" not in text and "--mem" not in text and "#SBATCH --signal=USR2@120" in text


def test_gpu_preset_asks_one_gpu_per_device(tmp_path):
    p = launcher_params(["hydra/launcher=stratos_slurm_gpu", "trainer.devices=4", "servers.slurm.partition=gpu"])
    assert p["gpus_per_node"] == 4 and p["tasks_per_node"] == 4
    text = sbatch_text(p, tmp_path)
    assert "#SBATCH --gpus-per-node=4" in text and "#SBATCH --ntasks-per-node=4" in text


def test_local_preset():
    p = launcher_params(["hydra/launcher=stratos_local", "servers.slurm.cpus_per_task=1", "servers.slurm.time_min=5"])
    assert p["_class"] == "LocalLauncher" and p["cpus_per_task"] == 1 and p["timeout_min"] == 5


@pytest.mark.parametrize("preset", ["stratos_slurm", "stratos_slurm_gpu", "stratos_local"])
def test_presets_compose_with_the_real_stratos_config(preset):
    p = launcher_params(["+task=mahjong", f"hydra/launcher={preset}", "servers.slurm.partition=debug"], app=False)
    assert p["timeout_min"] == 60 and p["_class"] == ("LocalLauncher" if preset == "stratos_local" else "SlurmLauncher")
    if preset != "stratos_local":
        assert p["partition"] == "debug" and p["tasks_per_node"] == 1


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "deepspeed"])
def test_multi_gpu_strategies_get_one_task_and_gpu_per_device(tmp_path, strategy):
    """trainer.distributed picks Lightning's engine; the launcher gives it devices x (task + GPU)."""
    p = launcher_params(["+task=mahjong", "trainer=gpu", "trainer.devices=4", f"trainer.distributed={strategy}",
                         "hydra/launcher=stratos_slurm_gpu", "servers.slurm.partition=gpu"], app=False)
    text = sbatch_text(p, tmp_path)
    assert "#SBATCH --gpus-per-node=4" in text and "#SBATCH --ntasks-per-node=4" in text
