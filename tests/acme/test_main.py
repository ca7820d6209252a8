"""`python -m stratos.acme` end to end as a user runs it (a fresh process, toy sizes, inline executor),
and the deprecated `python -m stratos ... strategy=acme cloud=edge` reaching the same run."""

import json
import os
import subprocess
import sys

from stratos.acme.__main__ import translate_old_overrides
from tests.acme.test_app import TOY

OLD_TOY = [a.replace("acme.", "strategy.acme.", 1) if a.startswith("acme.") else "cloud." + a for a in TOY]


def _python(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=env,
                          stdin=subprocess.DEVNULL)


def _metrics(stage_dir) -> dict:
    for name in ("manifest.json", "report.json", "report.txt"):
        assert (stage_dir / name).is_file(), name
    assert "bytes: ACME" in (stage_dir / "report.txt").read_text()
    return json.loads((stage_dir / "manifest.json").read_text())["metrics"]


def test_the_app_and_the_deprecated_pipeline_spelling_give_the_same_run(tmp_path):
    new = _python(["-m", "stratos.acme", "--out", str(tmp_path / "new"), *TOY, "acme.executor.kind=inline"])
    assert new.returncode == 0, new.stderr[-2000:]
    assert "stratos: warning" not in new.stderr  # today's spelling: nothing deprecated
    assert f"tables in {tmp_path / 'new' / 'acme' / 'report.txt'}" in new.stdout
    direct = _metrics(tmp_path / "new" / "acme")
    assert direct["acme/consistency/max_abs"] == 0.0 and direct["acme/onnx/max_abs_diff"] < 1e-4

    old = _python(["-m", "stratos", "+task=mahjong", "strategy=acme", "cloud=edge", *OLD_TOY,
                   "strategy.acme.engine.kind=inline", f"hydra.run.dir={tmp_path / 'old'}"])
    assert old.returncode == 0, old.stderr[-2000:]
    warnings = [ln for ln in old.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"stratos: warning: strategy=acme is deprecated; run python -m stratos.acme --out {tmp_path / 'old'} ")
    assert "strategy.acme." not in warnings[0] and " acme.executor.kind=inline" in warnings[0]
    bridged = _metrics(tmp_path / "old" / "acme")  # the old run dir layout: <hydra.run.dir>/acme/
    assert bridged == direct  # same settings, same seed: the same figures


def test_each_old_spelling_warns_once(capsys):
    got = translate_old_overrides(["strategy.acme.n_public=240", "strategy.acme.corpus_size=300", "cloud=edge",
                                   "+strategy.acme.engine.timeout_min=5"])
    assert got == ["acme.n_public=240", "acme.corpus_size=300", "+acme.executor.timeout_min=5"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3  # strategy.acme., cloud=edge, acme.engine.: one line each, not one per override
    assert "'strategy.acme.*' is read as 'acme.*'" in err[0]
    assert translate_old_overrides(["strategy.acme.n_public=240"], warn=False) == ["acme.n_public=240"]
    assert capsys.readouterr().err == ""
