"""launchers/kd_evidence.sh end to end at toy size: teacher, six conditions, the table."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_kd_evidence_launcher_runs_every_condition_and_prints_the_table(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "STEPS": "4", "SEEDS": "0", "TEACHER_STEPS": "6", "PYTHON": sys.executable,
           "EXTRA": "debug=fast task.n_train=128 task.n_val=16 task.n_test=16 trainer.checkpoint_every_n_steps=4",
           "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(["bash", "launchers/kd_evidence.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    table = (tmp_path / "evidence.md").read_text()
    for cond in ("a_labels_only", "a2_rationales_no_kd", "b_live_kd", "b2_live_kd_T1", "c_store_kd", "d_injection"):
        assert f"| {cond} | 1 |" in table, table
    assert "Teacher:" in table
    # the store condition read its teacher from the shared cache
    assert list((tmp_path / "cache" / "topk").glob("*/store.json"))


def test_kd_evidence_launcher_refuses_an_unknown_condition_before_any_work(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "CONDITIONS": "a_labels_only b_live_kdd", "PYTHON": sys.executable}
    r = subprocess.run(["bash", "launchers/kd_evidence.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "unknown condition 'b_live_kdd'" in r.stderr and "b_live_kd" in r.stderr
    assert not out.exists()  # no teacher training started, no directory made


# the conditions as the measured table ran them (the launcher's overrides before they became experiment files):
# an experiment file that drifts from these would make the README's figures describe another run
MEASURED = {
    "a_labels_only": {"strategy": "labels_only"},
    "a2_rationales_no_kd": {"strategy": "alignment", "mode": "logit", "kd_weight": 0.0},
    "b_live_kd": {"strategy": "alignment", "mode": "logit"},
    "b2_live_kd_T1": {"strategy": "alignment", "mode": "logit", "temperature": 1.0},
    "c_store_kd": {"strategy": "alignment", "mode": "logit", "top_k": 32},
    "d_injection": {"strategy": "injection"},
}


def test_every_condition_is_an_experiment_file_with_the_measured_settings(tmp_path):
    from stratos.config import AlignmentConfig
    from tests.conftest import compose_cfg

    folder = os.path.join(ROOT, "conf", "experiment", "kd_evidence")
    assert sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml")) == sorted(MEASURED)
    defaults = AlignmentConfig()
    for name, want in MEASURED.items():
        cfg = compose_cfg(["+task=mahjong", f"experiment=kd_evidence/{name}"], tmp_path)
        assert cfg.teacher.name == "tiny_teacher" and cfg.strategy.name == want["strategy"], name
        for key in ("mode", "kd_weight", "temperature", "top_k"):
            assert cfg.strategy.alignment[key] == want.get(key, getattr(defaults, key)), (name, key)
