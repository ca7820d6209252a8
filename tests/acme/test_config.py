import subprocess
import sys

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from stratos.acme.__main__ import compose_acme
from stratos.acme.config import validate_acme
from stratos.errors import UserError


def test_strategy_acme_and_cloud_edge_compose_typed():
    cfg = compose_acme([])
    assert cfg.strategy.name == "acme" and cfg.strategy.acme.backbone.family == "bert"
    assert [d.name for d in cfg.cloud.device_classes] == ["phone", "watch"]
    assert cfg.strategy.acme.elastic.hidden_weight == 0.1
    validate_acme(cfg.strategy, cfg.cloud)
    with pytest.raises((HydraException, OmegaConfBaseException)):
        compose_acme(["strategy.acme.elastic.steps=many"])  # typed by AcmeConfig


@pytest.mark.parametrize("override,key", [
    ("strategy.acme.backbone.family=gpt2", "strategy.acme.backbone.family"),
    ("strategy.acme.elastic.widths=[0.5,0.25]", "strategy.acme.elastic.widths"),
    ("strategy.acme.selection.n_measured=3", "strategy.acme.selection.n_measured"),
    ("strategy.acme.clients.dirichlet_alpha=0", "strategy.acme.clients.dirichlet_alpha"),
    ("strategy.acme.clients.weighting=mean", "strategy.acme.clients.weighting"),
    ("strategy.acme.engine.kind=ray", "strategy.acme.engine.kind"),
    ("cloud.device_classes.0.max_size_mb=-1", "cloud.device_classes[0].max_size_mb"),
])
def test_bad_values_name_the_key(override, key):
    cfg = compose_acme([override])
    with pytest.raises(UserError, match=key.replace("[", r"\[").replace("]", r"\]")):
        validate_acme(cfg.strategy, cfg.cloud)


def test_cli_prints_one_line_and_exits_2_on_a_bad_value(tmp_path):
    out = subprocess.run([sys.executable, "-m", "stratos.acme", "--out", str(tmp_path),
                          "strategy.acme.clients.keep_ratio=2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "strategy.acme.clients.keep_ratio" in lines[0]
