"""The `logger` group's owner (stratos/distill/loggers.py): start-up checks through the real CLI, building
the logger, and tiny distill runs whose CSV logger feeds the report, resumed without duplicate steps."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from lightning.pytorch.loggers import CSVLogger

from stratos.checks import validate
from stratos.distill.loggers import PACKAGES, build_logger
from stratos.distill.module import DistillModule
from stratos.distill.outputs import read_train_metrics
from stratos.errors import UserError
from stratos.pipeline import run_pipeline
from tests.conftest import compose_cfg

SMALL = ["+task=mahjong", "debug=fast", "task.n_train=96", "task.n_val=16", "task.n_test=16", "trainer.max_steps=8",
         "trainer.batch_size=8", "trainer.val_every_n_steps=4", "trainer.checkpoint_every_n_steps=4",
         "pipeline.stages=[data,distill,report]"]
MISSING = [(option, cls) for option, cls in [("tensorboard", "TensorBoardLogger"), ("mlflow", "MLFlowLogger"),
                                             ("wandb", "WandbLogger")]]


def installed(cls: str) -> bool:
    return any(importlib.util.find_spec(m) for m in PACKAGES[cls][0])


@pytest.mark.parametrize("option,cls", MISSING)
def test_a_logger_whose_package_is_missing_is_one_line_exit_2_and_nothing_written(option, cls, tmp_path):
    if installed(cls):
        pytest.skip(f"{cls}'s package is installed here")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "stratos", "+task=mahjong", f"logger={option}", f"paths.output_root={out}"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-1500:]
    assert len(lines) == 1 and lines[0].startswith("stratos: error: invalid value for 'logger': "), r.stderr[-1500:]
    assert f"{cls} needs the" in lines[0] and f"(pip install {PACKAGES[cls][1]};" in lines[0], lines[0]
    assert "Traceback" not in r.stdout + r.stderr
    assert not out.exists() or not any(out.rglob("*"))


def test_a_missing_logger_package_does_not_matter_when_nothing_trains(tmp_path):
    if installed("TensorBoardLogger"):
        pytest.skip("tensorboard is installed here")
    validate(compose_cfg(["+task=mahjong", "logger=tensorboard", "pipeline.stages=[plan]"], tmp_path))
    with pytest.raises(UserError, match="TensorBoardLogger needs"):
        validate(compose_cfg(["+task=mahjong", "logger=tensorboard", "pipeline.stages=[distill]"], tmp_path))


@pytest.mark.parametrize("override,needle", [
    ("logger.log_every_n_steps=0", "invalid value for 'logger.log_every_n_steps': 0 (allowed: an integer > 0)"),
    ("logger.save_dir=../elsewhere", "invalid value for 'logger.save_dir': '../elsewhere' (allowed: a relative path"),
    ("logger.save_dir=/tmp/logs", "invalid value for 'logger.save_dir': '/tmp/logs'"),
    ("logger._target_=lightning.pytorch.loggers.NoSuchLogger",
     "invalid value for 'logger._target_': 'lightning.pytorch.loggers.NoSuchLogger'"),
])
def test_bad_logger_values_are_user_errors(override, needle, tmp_path):
    with pytest.raises(UserError) as e:
        validate(compose_cfg(["+task=mahjong", override], tmp_path))
    assert needle in str(e.value)


def test_build_logger_passes_the_loggers_own_keys_only(tmp_path):
    cfg = compose_cfg(["+task=mahjong", "logger.log_every_n_steps=3"], tmp_path)
    lg = build_logger(cfg.logger, str(tmp_path / "logs"))  # log_every_n_steps would be a TypeError in CSVLogger
    assert isinstance(lg, CSVLogger) and lg.save_dir == str(tmp_path / "logs") and lg.name == ""
    assert build_logger(compose_cfg(["+task=mahjong", "logger=none"], tmp_path).logger, None) is False


def run(tmp_path, overrides, name="run"):
    cfg = compose_cfg([*SMALL, *overrides], tmp_path)
    validate(cfg)
    return tmp_path / name, run_pipeline(cfg, str(tmp_path / name))


def test_csv_logger_records_the_distill_steps_and_the_report_reads_them(tmp_path):
    run_dir, done = run(tmp_path, ["logger.log_every_n_steps=3"])
    with open(run_dir / "distill" / "logs" / "version_0" / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    assert {"step", "train/loss", "train/ce", "train/lr", "train/tokens_per_s", "val/loss"} <= set(header)
    m = done["distill"].metrics
    rows = read_train_metrics(done["distill"])
    # Lightning logs after steps 3 and 6, StepMetrics the last one; validation after step 4 and 8
    assert [r["step"] for r in rows] == [3, 4, 6, 8] and m["distill/steps"] == 8
    assert rows[-1]["train/loss"] == pytest.approx(m["distill/train/loss"], abs=1e-6)
    assert rows[-1]["val/loss"] == pytest.approx(m["distill/val/loss"], abs=1e-5)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["curve"]["last_loss"] == rows[-1]["train/loss"] and report["curve"]["last_step"] == 8
    assert [p["step"] for p in report["curve"]["points"]] == [3, 4, 6, 8]
    md = (run_dir / "report.md").read_text()
    assert "## Loss curve (4 logged steps" in md and "| step | train/loss | val/loss |" in md
    assert not (run_dir / "distill" / "train_log.jsonl").exists()


def test_a_resumed_run_logs_each_step_once_in_what_the_report_reads(tmp_path, monkeypatch):
    """Killed at step 7 (checkpoint at 4): the re-run resumes from step 4 and logs 5..8 again in the next
    version; the reader keeps each step once, and the steps both launches trained agree (exact resume)."""
    real_step = DistillModule.training_step

    def killed_at_step_7(self, batch, batch_idx):
        if self.global_step == 6:
            raise RuntimeError("killed at step 7")
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(DistillModule, "training_step", killed_at_step_7)
    with pytest.raises(RuntimeError, match="killed at step 7"):
        run(tmp_path, ["logger.log_every_n_steps=1"])
    monkeypatch.setattr(DistillModule, "training_step", real_step)
    run_dir, done = run(tmp_path, ["logger.log_every_n_steps=1"])

    logs = run_dir / "distill" / "logs"

    def steps(version: int) -> dict[int, float]:
        with open(logs / f"version_{version}" / "metrics.csv", newline="") as f:
            return {int(r["step"]) + 1: float(r["train/loss"]) for r in csv.DictReader(f) if r["train/loss"]}

    first, second = steps(0), steps(1)
    assert sorted(first) == [1, 2, 3, 4, 5, 6] and sorted(second) == [5, 6, 7, 8]
    rows = read_train_metrics(done["distill"])
    assert [r["step"] for r in rows] == list(range(1, 9))  # each step once
    for s in (5, 6):
        assert second[s] == pytest.approx(first[s], abs=1e-6)
    assert [r["train/loss"] for r in rows] == pytest.approx([first[s] for s in range(1, 5)] +
                                                            [second[s] for s in range(5, 9)])
    report = json.loads((run_dir / "report.json").read_text())
    assert report["curve"]["logged_steps"] == 8 and report["curve"]["last_loss"] == pytest.approx(second[8])


def test_logger_none_writes_no_logs_and_the_manifest_keeps_its_totals(tmp_path):
    run_dir, done = run(tmp_path, ["logger=none", "trainer.max_steps=3", "trainer.val_every_n_steps=3",
                                   "trainer.checkpoint_every_n_steps=3"])
    m = done["distill"].metrics
    assert m["distill/steps"] == 3 and m["distill/train/loss"] > 0 and m["distill/tokens_per_s"] > 0
    assert not (run_dir / "distill" / "logs").exists() and read_train_metrics(done["distill"]) == []
    assert json.loads((run_dir / "report.json").read_text())["curve"] is None
