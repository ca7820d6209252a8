"""The real CLI, end to end: `python -m stratos +task=mahjong` on a reduced config, and bad input.

Bad input must print one line (key, value, what is allowed), exit 2, show no traceback and leave no
half-written run directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

FAST = ["+task=mahjong", "debug=fast", "task.n_train=256", "task.n_val=32", "task.n_test=32", "trainer.num_threads=1"]


def cli(args: list[str], root, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "stratos", *args, f"paths.output_root={root}"],
                          capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_end_to_end_then_rerun_reuses_every_stage(tmp_path):
    r = cli(FAST, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = tmp_path / "mahjong" / "task_engine_to_tiny_llama_alignment" / "seed0"  # the plan chose alignment
    report = json.loads((run_dir / "report.json").read_text())
    for key in ("task", "plan", "strategy", "metrics", "export", "timings", "config"):
        assert key in report
    sel = report["plan"]["selected"]
    assert {"server", "teacher", "student", "strategy"} <= set(sel)
    assert report["plan"]["candidates"] > report["plan"]["pareto"] > 0
    assert report["strategy"]["name"] == "alignment" and report["strategy"]["teacher_probe_accuracy"] == 1.0
    assert report["strategy"]["reason"]
    st = report["metrics"]["student"]
    assert st["n"] == 32 and 0.0 <= st["accuracy"] <= 1.0
    assert report["metrics"]["teacher"]["accuracy"] == 1.0
    assert report["export"]["onnx_max_abs_diff"] < 1e-4
    assert set(report["timings"]) >= {"plan", "data", "distill", "evaluate", "export"}
    # predictions are graded from real model output
    preds = [json.loads(x) for x in (run_dir / "evaluate" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 32 and sum(p["correct"] for p in preds) == round(st["accuracy"] * 32)
    for stage in ("plan", "data", "distill", "evaluate", "export", "report"):
        assert (run_dir / stage / "manifest.json").exists()
    assert (run_dir / "report.md").read_text().startswith("# Stratos report")
    assert (run_dir / "distill" / "model" / "config.json").exists()

    again = cli(FAST, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    log = again.stdout + again.stderr
    for stage in ("data", "distill", "evaluate", "export"):
        assert f"stage {stage:<8} reused" in log


def test_plan_only_answers_without_training(tmp_path):
    r = cli(["+task=mahjong", "pipeline.stages=[plan]"], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = tmp_path / "mahjong" / "task_engine_to_tiny_llama_alignment" / "seed0"
    assert (run_dir / "plan" / "plan.json").exists() and (run_dir / "plan" / "pareto.png").exists()
    assert not (run_dir / "distill").exists()


def _assert_clean_failure(r, tmp_path, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert n in r.stderr
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not leftovers, leftovers


def test_unknown_group_option_lists_choices(tmp_path):
    r = cli(["+task=mahjong", "student=gpt5"], tmp_path, timeout=60)
    _assert_clean_failure(r, tmp_path, "Could not find 'student/gpt5'", "tiny_llama", "qwen2p5_0p5b")
    assert len(r.stderr.strip().splitlines()) == 1


# One line per bad value, across every group: tests/test_bad_input.py (the table).


def test_missing_task(tmp_path):
    r = cli([], tmp_path, timeout=60)
    _assert_clean_failure(r, tmp_path, "+task=")


def test_missing_weights_are_refused_before_any_work(tmp_path):
    r = cli(["+task=mahjong", "student=qwen2p5_0p5b", "pipeline.stages=[data,distill]"], tmp_path, timeout=120)
    _assert_clean_failure(r, tmp_path, "invalid value for 'student.name_or_path': 'Qwen/Qwen2.5-0.5B-Instruct'",
                          "not present")
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_old_cloud_group_name_is_read_as_servers_with_a_warning(capsys):
    from stratos.cli import rename_deprecated_overrides

    assert rename_deprecated_overrides(["+task=mahjong", "cloud=local", "cloud.pricing=spot", "++cloud.seed=1",
                                        "student=tiny_llama", "clouds=x"]) == [
        "+task=mahjong", "servers=local", "servers.pricing=spot", "++servers.seed=1", "student=tiny_llama", "clouds=x"]
    err = capsys.readouterr().err
    assert err.count("stratos: warning: the 'cloud' group is now 'servers'") == 3


def test_the_old_edge_servers_are_the_local_ones(capsys):
    """cloud=edge was servers=local plus ACME's device classes (now ACME's own config)."""
    from stratos.cli import rename_deprecated_overrides

    assert rename_deprecated_overrides(["cloud=edge", "servers=edge"]) == ["servers=local", "servers=local"]
    assert capsys.readouterr().err.count("servers=edge is deprecated (its device classes moved to python -m "
                                         "stratos.acme); read as servers=local") == 2


def test_the_acme_bridge_keeps_the_run_dir_and_refuses_sweeps(capsys):
    from stratos.cli import acme_bridge

    assert acme_bridge(["+task=mahjong", "cloud=local", "strategy=auto"]) is None
    assert capsys.readouterr().err == ""
    old = ["+task=mahjong", "strategy=acme", "cloud=edge", "strategy.acme.engine.kind=inline", "seed=1"]
    assert acme_bridge([*old, "hydra.run.dir=/r/x", "paths.output_root=/r"]) == [
        "--out", "/r/x", "acme.executor.kind=inline", "seed=1"]
    err = capsys.readouterr().err.splitlines()
    assert err == ["stratos: warning: strategy=acme is deprecated; run python -m stratos.acme --out /r/x "
                   "acme.executor.kind=inline seed=1 (running it now)"]
    assert acme_bridge([*old, "paths.output_root=/r"])[:2] == ["--out", "/r/acme"]
    assert acme_bridge(old)[:2] == ["--out", "outputs/acme"]
    with pytest.raises(SystemExit) as e:
        acme_bridge(["-m", *old, "seed=0,1"])
    assert e.value.code == 2 and "cannot be swept" in capsys.readouterr().err


def test_plan_with_the_deprecated_names_still_runs(tmp_path):
    r = cli(["+task=mahjong", "pipeline.stages=[plan]", "cloud=local", "deploy.budget_usd=5"], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "the 'cloud' group is now 'servers'" in r.stderr and "'deploy.budget_usd' is deprecated" in r.stderr
    plan = json.loads(next(tmp_path.rglob("plan/plan.json")).read_text())
    assert plan["constraints"]["budget_usd"] == 5.0 and plan["servers"] == 1  # only this machine: servers=local


def test_a_gpu_trainer_on_a_machine_without_one_is_refused_before_any_work(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: trainer.accelerator=gpu is valid here")
    r = cli(["+task=mahjong", "trainer=gpu"], tmp_path, timeout=60)
    _assert_clean_failure(r, tmp_path, "invalid value for 'trainer.accelerator': 'gpu' on this machine")
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_exception_a_run_raises_is_marked_and_the_mark_survives_the_trip_back_from_a_job(monkeypatch):
    """On a submitit launcher the run is in the job; Hydra raises its exception again in the launching process."""
    import cloudpickle

    from stratos import cli

    def boom(cfg):
        raise subprocess.CalledProcessError(-15, ["scontrol", "requeue", "7"])

    monkeypatch.setattr(cli, "run_task", boom)
    with pytest.raises(subprocess.CalledProcessError) as e:
        cli.hydra_main.__wrapped__(None)
    back = cloudpickle.loads(cloudpickle.dumps(e.value))  # as submitit carries a failed JobReturn home
    assert getattr(back, cli.RUN_FAILED) is True and back.cmd == ["scontrol", "requeue", "7"]


@pytest.mark.parametrize("marked", [True, False])
def test_a_sweeps_launching_process_keeps_a_failed_runs_traceback_and_shortens_only_config_errors(
        monkeypatch, capsys, marked):
    """Before: a sweep job's exception (a killed `scontrol requeue`) came out as 'stratos: error: ...', exit 2."""
    from stratos import cli

    error = subprocess.CalledProcessError(-15, ["scontrol", "requeue", "7"]) if marked else \
        ValueError("Could not override 'x'.\nKey 'x' is not in struct")
    if marked:
        setattr(error, cli.RUN_FAILED, True)

    def launching_process():  # a multirun: Hydra composed nothing of ours here, the job ran elsewhere
        raise error

    monkeypatch.setattr(cli, "hydra_main", launching_process)
    monkeypatch.setattr(cli, "_task_started", False)
    monkeypatch.setattr(sys, "argv", ["stratos", "-m", "+task=mahjong"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    if marked:
        with pytest.raises(subprocess.CalledProcessError):
            cli.main()
    else:
        with pytest.raises(SystemExit) as e:
            cli.main()
        assert e.value.code == 2
        assert capsys.readouterr().err.strip() == "stratos: error: Could not override 'x'.; Key 'x' is not in struct"
