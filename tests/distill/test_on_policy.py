"""On-policy KD through the distill stage: which teacher scores the student's samples, the decision that
says so (strategy.json), and the rollouts' metrics; the live-teacher and the verifier runs end to end, and the
served teacher's through the real CLI against `stratos.serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from stratos.checks import validate
from stratos.config import OnPolicyConfig
from stratos.distill.on_policy import decide_on_policy, scorer_for, validate_on_policy
from stratos.distill.outputs import read_train_metrics
from stratos.distill.strategy import Decision, Mode
from stratos.errors import UserError
from stratos.tasks.mahjong.task import MahjongTask
from tests.conftest import compose_cfg
from tests.distill.test_stage import kd, run, teacher_dir  # noqa: F401  (the module-scoped teacher fixture)

ON = "strategy.alignment.on_policy"


def decision(mode):
    return Decision("alignment", Mode(mode), "why", 1.0, 4)


@pytest.mark.parametrize("kind,scorer,want", [("hf", "auto", "logits"), ("engine", "auto", "verifier"),
                                              ("openai", "auto", "logprobs"), ("routed", "auto", None),
                                              ("hf", "verifier", "verifier")])
def test_auto_scorer_follows_the_teacher(kind, scorer, want):
    assert scorer_for(OnPolicyConfig(rate=0.5, scorer=scorer), kind) == want


def test_the_decision_says_when_on_policy_applies_and_why_not():
    task = MahjongTask(n_train=4, n_val=2, n_test=2)
    hf, engine = SimpleNamespace(kind="hf"), SimpleNamespace(kind="engine")
    op = OnPolicyConfig(rate=0.25, temperature=0.7)
    d = decision("logit")
    plan = decide_on_policy(d, op, hf, task)
    assert plan.scorer == "logits" and plan.max_new_tokens == task.max_new_tokens  # 0 = the task's budget
    assert d.on_policy == {"rate": 0.25, "scorer": "logits", "temperature": 0.7, "max_new_tokens": 192}
    assert "on-policy KD on lambda=0.25" in d.reason and not d.refused
    d = decision("sequence")
    assert decide_on_policy(d, OnPolicyConfig(rate=1.0, max_new_tokens=40), engine, task).max_new_tokens == 40
    assert d.on_policy["scorer"] == "verifier" and "line by line" in d.reason
    d = decision("hidden")  # the teacher's hidden states on the samples join the MSE
    assert decide_on_policy(d, op, hf, task).scorer == "logits" and not d.refused
    d = decision("cross_tokenizer")  # the teacher reads the samples' text in its own tokens
    assert decide_on_policy(d, op, hf, task).scorer == "logits" and not d.refused and "its own tokens" in d.reason
    for mode, why in (("injection", "no teacher"), ("labels", "labels")):
        d = decision(mode)
        assert decide_on_policy(d, op, hf, task) is None and d.on_policy == {}
        assert d.refused and d.refused[0].startswith("on-policy KD refused") and why in d.refused[0]
    d = decision("logit")
    assert decide_on_policy(d, OnPolicyConfig(rate=0.0), hf, task) is None and not d.refused and d.on_policy == {}


def test_a_served_teacher_scores_sequence_kd_when_its_server_scores_given_tokens():
    from stratos.models.openai_scoring import ScoreSupport

    task = MahjongTask(n_train=4, n_val=2, n_test=2)
    op = OnPolicyConfig(rate=0.5)
    served = SimpleNamespace(kind="openai", scoring=ScoreSupport(api="echo", works=["echo"]), score_top_logprobs=5)
    d = decision("sequence")
    plan = decide_on_policy(d, op, served, task)
    assert plan.scorer == "logprobs" and not d.refused and "served teacher's top-k log-probs" in d.reason
    assert d.on_policy == {"rate": 0.5, "scorer": "logprobs", "temperature": 1.0, "max_new_tokens": 192,
                           "score_api": "echo", "score_top_logprobs": 5}
    mute = SimpleNamespace(kind="openai", scoring=ScoreSupport(failures={"echo": "HTTP 404: no route"}))
    d = decision("sequence")
    assert decide_on_policy(d, op, mute, task) is None and d.on_policy == {}
    assert "the server scores no given tokens (echo: HTTP 404: no route)" in d.refused[0]
    d = decision("injection")
    assert decide_on_policy(d, op, served, task) is None and "no teacher" in d.refused[0]


def test_validate_refuses_teachers_that_cannot_score_samples(tmp_path):
    ok = compose_cfg(["+task=mahjong", f"{ON}.rate=0.5"], tmp_path)  # the engine verifies Mahjong rollouts
    validate_on_policy(ok)
    validate_on_policy(compose_cfg(["+task=gsm8k", f"{ON}.rate=0.5"], tmp_path))  # generated steps: judged
    bad = compose_cfg(["+task=gsm8k", "task.hf_dataset=openai/gsm8k", f"{ON}.rate=0.5"], tmp_path)  # prose solutions
    with pytest.raises(UserError, match="no line judge"):
        validate_on_policy(bad)
    validate_on_policy(compose_cfg(["+task=gsm8k", f"{ON}.rate=0"], tmp_path))  # off: nothing to check
    served = ["+task=mahjong", "teacher=openai_endpoint", "teacher.base_url=http://127.0.0.1:9/v1", "teacher.model=m",
              f"{ON}.rate=0.5"]
    validate_on_policy(compose_cfg([*served, "student.name_or_path=some/checkpoint"], tmp_path))  # no probe here
    with pytest.raises(UserError, match="'student.name_or_path': None .*trains its own tokenizer"):
        validate_on_policy(compose_cfg(served, tmp_path))


def test_on_policy_logit_kd_runs_the_pipeline_with_a_live_teacher(tmp_path, teacher_dir):  # noqa: F811
    run_dir, done = run(tmp_path, kd(teacher_dir, f"{ON}.rate=0.5", f"{ON}.max_new_tokens=24", f"{ON}.temperature=0.8"))
    strategy = json.loads((run_dir / "distill" / "strategy.json").read_text())
    assert strategy["mode"] == "logit" and not strategy["refused"]
    assert strategy["on_policy"] == {"rate": 0.5, "scorer": "logits", "temperature": 0.8, "max_new_tokens": 24}
    m = done["distill"].metrics
    assert 0 < m["distill/on_policy/share"] < 1 and m["distill/on_policy/sampled_tokens"] > 0
    assert m["distill/on_policy/tokens_per_s"] > 0
    logged = read_train_metrics(done["distill"])
    assert any(r.get("train/rollout_kd", 0) > 0 for r in logged)
    assert any(r.get("train/on_policy/tokens_per_s", 0) > 0 for r in logged)


def test_on_policy_hidden_state_kd_scores_the_samples_with_the_teachers_logits_and_hidden_states(tmp_path,
                                                                                               teacher_dir):  # noqa: F811
    run_dir, done = run(tmp_path, kd(teacher_dir, "strategy.alignment.mode=hidden", f"{ON}.rate=1.0",
                                     f"{ON}.max_new_tokens=16"))
    strategy = json.loads((run_dir / "distill" / "strategy.json").read_text())
    assert strategy["mode"] == "hidden" and not strategy["refused"] and strategy["on_policy"]["scorer"] == "logits"
    assert done["distill"].metrics["distill/on_policy/share"] == 1.0
    logged = read_train_metrics(done["distill"])
    assert any(r.get("train/rollout_kd", 0) > 0 and r.get("train/hidden_mse", 0) > 0 for r in logged)


def test_on_policy_cross_tokenizer_kd_aligns_the_samples_to_the_teachers_tokens(tmp_path, teacher_dir):  # noqa: F811
    """A student with its own tokenizer samples every row; the teacher reads each sample's text in its own tokens
    and scores it at the aligned spans (KD only on those rows)."""
    run_dir, done = run(tmp_path, kd(teacher_dir, "student.tokenizer_from=train", "student.tokenizer_vocab=320",
                                     f"{ON}.rate=1.0", f"{ON}.max_new_tokens=24", f"{ON}.temperature=0.7"))
    strategy = json.loads((run_dir / "distill" / "strategy.json").read_text())
    assert strategy["mode"] == "cross_tokenizer" and not strategy["refused"], strategy
    assert strategy["on_policy"]["scorer"] == "logits" and "its own tokens" in strategy["reason"]
    m = done["distill"].metrics
    assert m["distill/on_policy/share"] > 0.9 and m["distill/on_policy/sampled_tokens"] > 0
    assert 0 < m["distill/on_policy/aligned_share"] <= 1
    logged = read_train_metrics(done["distill"])
    assert any(r.get("train/rollout_kd", 0) > 0 for r in logged), logged


def test_the_verifier_teacher_runs_the_pipeline_under_strategy_auto(tmp_path):
    cfg_over = ["pipeline.stages=[data,distill]", f"{ON}.rate=1.0", f"{ON}.max_new_tokens=32"]
    cfg = compose_cfg(["+task=mahjong", "debug=fast", "task.n_train=64", "task.n_val=8", "task.n_test=8",
                       "trainer.max_steps=3", "trainer.batch_size=8", *cfg_over], tmp_path)
    validate(cfg)
    from stratos.pipeline import run_pipeline

    done = run_pipeline(cfg, str(tmp_path / "run"))
    strategy = json.loads((tmp_path / "run" / "distill" / "strategy.json").read_text())
    assert strategy["name"] == "alignment" and strategy["mode"] == "sequence"  # auto: the engine knows the task
    assert strategy["on_policy"]["scorer"] == "verifier" and "line by line" in strategy["reason"]
    m = done["distill"].metrics
    assert m["distill/on_policy/share"] == 1.0 and m["distill/on_policy/sampled_tokens"] > 0
    assert 0 <= m["distill/on_policy/lines_ok_share"] <= 1 and "distill/on_policy/correct_share" in m


def test_on_policy_with_a_served_teacher_runs_the_cli(tmp_path, torch_one_thread):
    """`python -m stratos ... teacher=openai_endpoint` at a local stratos.serve of a tiny teacher: the student (its
    tokenizer is the teacher's) samples half the rows and the server scores them (scorer auto -> logprobs). A random
    tiny teacher verifies nothing, so its rationales are kept unverified (verify=false)."""
    from stratos.artifacts import Manifest
    from stratos.serve.engine import load_engine
    from stratos.serve.server import running
    from stratos.serve.settings import ServeSettings
    from tests.helpers.tiny_export import build_tiny_checkpoint

    teacher = build_tiny_checkpoint(str(tmp_path / "teacher"), hidden=64, layers=2)
    student = build_tiny_checkpoint(str(tmp_path / "student"), hidden=32, layers=2)  # the same tokenizer (seed 0)
    engine = load_engine(teacher, "torch", threads=1)
    out = tmp_path / "out"
    with running(engine, ServeSettings(port=0)) as url:
        args = ["+task=mahjong", "debug=fast", "task.n_train=32", "task.n_val=8", "task.n_test=8",
                "pipeline.stages=[data,distill]", "teacher=openai_endpoint", f"teacher.base_url={url}",
                f"teacher.model={engine.name}", "teacher.api_key_env=", "teacher.max_new_tokens=16",
                f"student.name_or_path={student}", "strategy=alignment", "strategy.probe_n=2",
                "strategy.alignment.verify=false", f"{ON}.rate=0.5", f"{ON}.max_new_tokens=16", "trainer.max_steps=3",
                "trainer.batch_size=4", "trainer.val_every_n_steps=3", "trainer.checkpoint_every_n_steps=3",
                f"paths.output_root={out}"]
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "stratos", *args], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    (distill,) = out.rglob("distill/strategy.json")
    strategy = json.loads(distill.read_text())
    assert strategy["mode"] == "sequence" and not strategy["refused"]
    assert strategy["on_policy"]["scorer"] == "logprobs" and strategy["on_policy"]["score_api"] == "prompt_logprobs"
    assert strategy["on_policy"]["vocab_check"]["matching_share"] == 1.0
    manifest = Manifest.load(str(distill.parent / "manifest.json"))
    m = manifest.metrics
    assert 0 < m["distill/on_policy/share"] < 1 and m["distill/on_policy/scored_tokens"] > 0
    assert m["distill/on_policy/scored_tokens"] == m["distill/on_policy/sampled_tokens"]  # every sample scored
    assert m["distill/on_policy/scored_tokens_per_s"] > 0 and m["distill/on_policy/score_failed"] == 0
    logged = read_train_metrics(manifest)
    assert any(row.get("train/rollout_kd", 0) > 0 for row in logged)
    assert any(row.get("train/on_policy/scored_tokens", 0) > 0 for row in logged)
    print(f"served on-policy CLI run: {seconds:.1f} s")


@pytest.mark.slow
def test_on_policy_under_ddp_on_two_cpu_processes(tmp_path, teacher_dir):  # noqa: F811
    """`trainer=ddp_cpu` (Lightning DDP, gloo, 2 processes) through the real CLI: each rank samples its own rows
    (seeded by (seed, step, rank)) through the DDP-wrapped student and the live teacher scores them; the ranks never
    wait on each other inside sampling, so rollouts of different lengths on the two ranks must not hang the run."""
    from stratos.artifacts import Manifest

    out = tmp_path / "out"
    args = ["+task=mahjong", "debug=fast", "task.n_train=64", "task.n_val=8", "task.n_test=8", "trainer=ddp_cpu",
            "trainer.max_steps=4", "trainer.batch_size=8", "trainer.val_every_n_steps=4",
            "trainer.checkpoint_every_n_steps=4", *kd(teacher_dir, f"{ON}.rate=0.5", f"{ON}.max_new_tokens=16"),
            f"paths.output_root={out}"]
    r = subprocess.run([sys.executable, "-m", "stratos", *args], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("length slices:") == 2  # each rank's process builds its own loader: two ranks sampled
    (distill,) = out.rglob("distill/strategy.json")
    strategy = json.loads(distill.read_text())
    assert strategy["mode"] == "logit" and strategy["on_policy"]["scorer"] == "logits"
    m = Manifest.load(str(distill.parent / "manifest.json")).metrics
    assert m["distill/steps"] == 4 and 0 < m["distill/on_policy/share"] < 1
    assert m["distill/on_policy/sampled_tokens"] > 0
    logged = read_train_metrics(Manifest.load(str(distill.parent / "manifest.json")))
    assert any(row.get("train/rollout_kd", 0) > 0 for row in logged)
