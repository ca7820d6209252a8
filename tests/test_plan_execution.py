"""The plan runs (issue: plan -> execute): through the real CLI, nothing mocked.

Nothing pinned: the plan's student trains. Pinned: the user's value wins. A plan-chosen run and the
same choices typed by hand have the same stage hashes. A candidate that cannot run here is never
executed. Pins that leave no runnable feasible plan: one line, exit 2, nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from omegaconf import OmegaConf

from stratos.artifacts import Manifest
from stratos.pipeline import stage_hash

FAST = ["+task=mahjong", "debug=fast", "task.n_train=256", "task.n_val=32", "task.n_test=32", "trainer.num_threads=1"]


def cli(args: list[str], root, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("STRATOS_PLAN_OVERRIDES", None)
    return subprocess.run([sys.executable, "-m", "stratos", *args, f"paths.output_root={root}",
                           f"planner.history={root}/history.json"],
                          capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def run_dir_of(r: subprocess.CompletedProcess) -> str:
    line = next(x for x in (r.stdout + r.stderr).splitlines() if "run dir: " in x)
    return line.split("run dir: ", 1)[1].strip()


def load(run_dir: str):
    cfg = OmegaConf.create(yaml.safe_load(open(os.path.join(run_dir, "config.yaml"))))
    plan = json.load(open(os.path.join(run_dir, "plan", "plan.json")))
    decisions = {d["name"]: d for d in json.load(open(os.path.join(run_dir, "decisions.json")))["decisions"]}
    return cfg, plan, decisions


def test_nothing_pinned_the_plans_choices_run(tmp_path):
    r = cli(["+task=mahjong", "pipeline.stages=[plan]"], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = run_dir_of(r)
    cfg, plan, ds = load(run_dir)
    sel = plan["selected"]
    assert sel["runnable"] and not sel["needs"]
    assert cfg.student.name == sel["student"] and cfg.teacher.name == sel["teacher"]
    assert cfg.strategy.name == sel["strategy"] and cfg.servers.run_server == sel["server"]
    assert ds["student"]["origin"] == "decided by plan" and ds["student"]["value"] == sel["student"]
    # the deadline became steps: tokens / (batch x tokens per example), and the wall-time guard
    steps = ds["trainer.max_steps"]["value"]
    assert cfg.trainer.max_steps == steps and 100 < steps < 100_000
    assert cfg.trainer.max_minutes == ds["trainer.max_minutes"]["value"] == 8.4  # constraints.deadline_h = 0.14
    # the run directory is named after what runs; plan.json's run estimate is the selected plan's own
    assert run_dir.endswith(os.path.join("mahjong", f"{sel['teacher']}_to_{sel['student']}_{sel['strategy']}", "seed0"))
    assert plan["run"]["source"] == "selected" and plan["run"]["tokens"] == sel["estimates"]["train_tokens"]
    assert {d["name"]: d["origin"] for d in plan["decisions"]} == {k: d["origin"] for k, d in ds.items()}
    # the best plan overall is reported with what it would take (it is not runnable here)
    best = plan["best_overall"]
    assert best["needs"] and not best["runnable"]


def test_pinned_student_wins_over_the_plan(tmp_path):
    r = cli(["+task=mahjong", "student=mini_llama", "pipeline.stages=[plan]"], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg, plan, ds = load(run_dir_of(r))
    assert cfg.student.name == "mini_llama" == plan["selected"]["student"]
    assert ds["student"]["origin"] == "pinned by you"
    assert ds["teacher"]["origin"] == "decided by plan"


def test_pinned_steps_win_and_fix_the_planned_tokens(tmp_path):
    r = cli(["+task=mahjong", "trainer.max_steps=77", "pipeline.stages=[plan]"], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg, plan, ds = load(run_dir_of(r))
    assert cfg.trainer.max_steps == 77 and ds["trainer.max_steps"]["origin"] == "pinned by you"
    assert ds["trainer.max_minutes"]["origin"] == "pinned by you"
    assert plan["selected"]["estimates"]["train_tokens"] == 77 * cfg.trainer.batch_size * 42.0


def test_a_plan_chosen_run_and_the_same_choices_typed_by_hand_share_stage_hashes(tmp_path):
    a = cli([*FAST, "pipeline.stages=[plan,data]"], tmp_path / "a")
    assert a.returncode == 0, a.stderr[-2000:]
    cfg_a, _, ds = load(run_dir_of(a))
    typed = [o for d in ds.values() if d["origin"] == "decided by plan" and d["override"] for o in d["override"].split()]
    b = cli([*FAST, *typed, "planner.execute=false", "pipeline.stages=[plan,data]"], tmp_path / "b")
    assert b.returncode == 0, b.stderr[-2000:]
    run_a, run_b = run_dir_of(a), run_dir_of(b)
    cfg_b = OmegaConf.create(yaml.safe_load(open(os.path.join(run_b, "config.yaml"))))
    data_a = Manifest.load(os.path.join(run_a, "data", "manifest.json"))
    data_b = Manifest.load(os.path.join(run_b, "data", "manifest.json"))
    assert data_a.config_hash == data_b.config_hash
    assert stage_hash(cfg_a, "distill", {"data": data_a}) == stage_hash(cfg_b, "distill", {"data": data_b})
    assert os.path.relpath(run_a, tmp_path / "a") == os.path.relpath(run_b, tmp_path / "b")  # same run name


def test_a_candidate_that_cannot_run_here_is_never_executed(tmp_path):
    r = cli(["+task=mahjong", "planner.students=[qwen2p5_0p5b,tiny_llama]", "pipeline.stages=[plan]"], tmp_path,
            timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg, plan, _ = load(run_dir_of(r))
    best, sel = plan["best_overall"], plan["selected"]
    assert best["needs"] and not best["runnable"] and best["score"] >= sel["score"]  # as good or better, not from here
    assert sel["runnable"] and cfg.student.name == sel["student"] == "tiny_llama"
    assert all(p["runnable"] for p in plan["baselines"].values())
    # the non-runnable parts say what they need, in the plan and in the front
    students = {p["name"]: p for p in plan["runnable"]["students"]}
    assert not students["qwen2p5_0p5b"]["runnable"] and "Qwen/Qwen2.5-0.5B-Instruct" in students["qwen2p5_0p5b"]["why"]
    assert all(p["runnable"] and not p["needs"] for p in plan["front"])  # the front it chose from


def _clean_failure(r, tmp_path, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for n in needles:
        assert n in r.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_pins_that_leave_nothing_runnable_exit_2_naming_the_best_plan(tmp_path):
    r = cli(["+task=mahjong", "student=qwen2p5_0p5b", "pipeline.stages=[plan]"], tmp_path, timeout=120)
    _clean_failure(r, tmp_path, "no runnable candidate", "qwen2p5_0p5b", "not present")


def test_constraints_no_runnable_plan_meets_name_the_binding_one(tmp_path):
    r = cli(["+task=mahjong", "constraints.min_accuracy=0.5", "pipeline.stages=[plan]"], tmp_path, timeout=120)
    _clean_failure(r, tmp_path, "no runnable plan meets the constraints", "min_accuracy",
                   "the best plan overall", "is not runnable here")
