"""ACME's own root config (conf/acme.yaml, AcmeAppConfig): composes typed, refuses bad values in one line,
reads the old `strategy=acme cloud=edge` spellings with a deprecation line, and stays out of the
distillation config (no import of stratos.acme from stratos.config)."""

import subprocess
import sys

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from stratos.acme.__main__ import compose_acme, translate_old_overrides
from stratos.acme.config import validate_acme
from stratos.errors import UserError


def test_the_acme_root_config_composes_typed():
    cfg = compose_acme([])
    assert cfg.acme.backbone.family == "bert" and cfg.seed == 0
    assert [d.name for d in cfg.device_classes] == ["phone", "watch"]
    assert cfg.acme.elastic.hidden_weight == 0.1
    assert "strategy" not in cfg and "teacher" not in cfg  # not the distillation config
    validate_acme(cfg)
    with pytest.raises((HydraException, OmegaConfBaseException)):
        compose_acme(["acme.elastic.steps=many"])  # typed by AcmeConfig


@pytest.mark.parametrize("override,key", [
    ("acme.backbone.family=gpt2", "acme.backbone.family"),
    ("acme.elastic.widths=[0.5,0.25]", "acme.elastic.widths"),
    ("acme.selection.n_measured=3", "acme.selection.n_measured"),
    ("acme.clients.dirichlet_alpha=0", "acme.clients.dirichlet_alpha"),
    ("acme.clients.weighting=mean", "acme.clients.weighting"),
    ("acme.executor.kind=ray", "acme.executor.kind"),
    ("device_classes.0.max_size_mb=-1", "device_classes[0].max_size_mb"),
])
def test_bad_values_name_the_key(override, key):
    cfg = compose_acme([override])
    with pytest.raises(UserError, match=key.replace("[", r"\[").replace("]", r"\]")):
        validate_acme(cfg)


def test_old_spellings_are_read_with_a_warning(capsys):
    assert translate_old_overrides(["+task=mahjong", "strategy=acme", "cloud=edge", "strategy.acme.seedless=1",
                                    "cloud.device_classes.0.n_clients=2", "seed=3", "strategy.acme.engine.kind=inline"]) == [
        "acme.seedless=1", "device_classes.0.n_clients=2", "seed=3", "acme.executor.kind=inline"]
    err = capsys.readouterr().err
    assert "'strategy.acme.' is deprecated" in err and "'cloud=edge' is no longer needed" in err


def test_cli_prints_one_line_and_exits_2_on_a_bad_value(tmp_path):
    out = subprocess.run([sys.executable, "-m", "stratos.acme", "--out", str(tmp_path),
                          "acme.clients.keep_ratio=2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stratos: error:") and "acme.clients.keep_ratio" in lines[0]
    assert not any(tmp_path.iterdir())


def test_the_deprecated_pipeline_spelling_runs_the_acme_application(tmp_path):
    out = subprocess.run([sys.executable, "-m", "stratos", "+task=mahjong", "strategy=acme", "cloud=edge",
                          "strategy.acme.clients.keep_ratio=2", f"paths.output_root={tmp_path}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("stratos: warning: strategy=acme is deprecated")
    assert lines[-1] == "stratos: error: invalid value for 'acme.clients.keep_ratio': 2.0 (allowed: 0 < ratio <= 1)"


def test_the_distillation_config_does_not_import_acme():
    code = "import sys, stratos.config, stratos.checks, stratos.pipeline; " \
           "print(any(m.startswith('stratos.acme') for m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr
