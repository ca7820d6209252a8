"""Bad input through the real CLI, one row per mistake, across every config group.

Each row must end in one line on stderr naming the key (and the value) with what is allowed, exit
code 2, no traceback, and nothing written under the output root. Rows run the plan-only pipeline
unless the mistake concerns training; most are refused before torch or Lightning is imported, in about a
second each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

PLAN = "pipeline.stages=[plan]"
CASES = [  # (overrides, text the one line must contain)
    # task
    (["+task=chess"], "Could not find 'task/chess'"),
    (["task.n_train=0"], "invalid value for 'task.n_train': 0"),
    (["task.variant=hongkong"], "invalid value for 'task.variant': 'hongkong' (allowed: basic, riichi)"),
    (["task.notation=emoji"], "invalid value for 'task.notation': 'emoji'"),
    (["task.rationale_format=essay"], "invalid value for 'task.rationale_format': 'essay'"),
    (["task.variant=riichi", "task.rationale_format=suits"], "invalid value for 'task.rationale_format': 'suits'"),
    (["task.nontenpai_rate=1.5"], "invalid value for 'task.nontenpai_rate': 1.5"),
    (["task.curriculum=[{share:1}]"], "invalid value for 'task.curriculum': '1 stage' (allowed: a list of >= 2"),
    (["task.test_distribution=flat"], "invalid value for 'task.test_distribution': 'flat' (allowed: natural, balanced)"),
    (["+task.wait_distribution.12=0.5"], "invalid value for 'task.wait_distribution': '12'"),
    (["task.wait_distribution.12=0.5"], "unknown key 'task.wait_distribution.12'"),
    (["task.source=/no/such/hands.jsonl"], "invalid value for 'task.source': '/no/such/hands.jsonl'"),
    # teacher
    (["teacher=gpt5"], "Could not find 'teacher/gpt5'"),
    (["teacher=openai_endpoint"], "missing value for 'teacher.base_url'"),
    (["teacher=openai_endpoint", "teacher.base_url=ftp://host/v1", "teacher.model=m"],
     "invalid value for 'teacher.base_url': 'ftp://host/v1'"),
    (["teacher=tiny_teacher"], "missing value for 'teacher.name_or_path'"),
    (["teacher=tiny_teacher", "teacher.name_or_path=/no/such/teacher"], "invalid value for 'teacher.name_or_path'"),
    (["teacher.max_new_tokens=0"], "invalid value for 'teacher.max_new_tokens': 0"),
    (["teacher.base_url=http://x/v1"], "unknown key 'teacher.base_url'"),
    # several teachers (teachers + route)
    (["+teacher@teachers.low=gpt5"], "Could not find 'teacher/gpt5'"),
    (["+teacher@teachers.low=task_engine", "+teacher@teachers.high=task_engine", "strategy.alignment.on_policy.rate=0.5"],
     "invalid value for 'strategy.alignment.on_policy.rate': 0.5 (allowed: 0 with several teachers unless every one is white-box"),
    (["+teacher@teachers.low=tiny_teacher"], "missing value for 'teachers.low.name_or_path'"),
    (["+teacher@teachers.low=task_engine", "+teacher@teachers.high=tiny_teacher",
      "teachers.high.name_or_path=/no/such/teacher"], "invalid value for 'teachers.high.name_or_path': '/no/such/teacher'"),
    (["pipeline.stages=[data,distill]", "+teacher@teachers.low=task_engine", "+teacher@teachers.api=openai_endpoint",
      "teachers.api.base_url=http://127.0.0.1:9/v1", "teachers.api.model=m"],
     "invalid value for 'teachers.api.base_url': 'http://127.0.0.1:9/v1' (allowed: a reachable OpenAI-compatible"),
    (["+teacher@teachers.Low=task_engine"], "invalid value for 'teachers.Low': 'Low' (allowed: a lower-case identifier"),
    (["+teacher@teachers.low=task_engine", "route.by=slice", "++route.slices={0-2: low, 3+: mid}"],
     "invalid value for 'route.slices.3+': 'mid' (allowed: a teacher id in teachers: low)"),
    (["+teacher@teachers.low=task_engine", "route.default=mid"],
     "invalid value for 'route.default': 'mid' (allowed: a teacher id in teachers: low)"),
    (["+teacher@teachers.low=task_engine", "route.by=slice"], "invalid value for 'route.slices': '{}'"),
    (["route.by=slice"], "invalid value for 'route.by': 'slice' (allowed: route settings only with several teachers"),
    (["+teacher@teachers.low=task_engine", "route.by=random"], "invalid value for 'route.by': 'random'"),
    (["+teacher@teachers.low=task_engine", "route.tolerance=2"], "invalid value for 'route.tolerance': 2.0"),
    (["+teacher@teachers.low=task_engine", "route.budget_usd=0"],
     "invalid value for 'route.budget_usd': 0.0 (allowed: dollars > 0, or null for no limit)"),
    (["+teacher@teachers.low=task_engine", "+route.usd_per_mtok.mid=2"],
     "invalid value for 'route.usd_per_mtok.mid': 'mid' (allowed: a teacher id in teachers: low)"),
    (["+teacher@teachers.low=task_engine", "strategy.alignment.hidden_weight=0.5"],
     "invalid value for 'strategy.alignment.hidden_weight': 0.5 (allowed: 0 with several teachers)"),
    (["+teacher@teachers.low=task_engine", "strategy.alignment.mode=hidden"],
     "invalid value for 'strategy.alignment.mode': 'hidden' (allowed: auto, logit or sequence with several teachers"),
    # student
    (["student=gpt5"], "Could not find 'student/gpt5'"),
    (["student.arch.family=mamba"], "invalid value for 'student.arch.family': 'mamba' (allowed: llama, qwen2, gpt2)"),
    (["student.arch.heads=3"], "invalid value for 'student.arch.heads': 3"),
    (["student.peft.method=qlora"], "invalid value for 'student.peft.method': 'qlora' (allowed: none, lora)"),
    (["student.peft.r=0"], "invalid value for 'student.peft.r': 0"),
    (["student.tokenizer_vocab=10"], "invalid value for 'student.tokenizer_vocab': 10"),
    (["student.tokenizer_vocab=200"], "invalid value for 'student.tokenizer_vocab': 200 (allowed: an integer >= 259"),
    (["student.tokenizer_from=mine"], "invalid value for 'student.tokenizer_from': 'mine'"),
    (["student.name_or_path=/no/such/student"], "invalid value for 'student.name_or_path': '/no/such/student'"),
    # strategy
    (["strategy=magic"], "Could not find 'strategy/magic'"),
    (["strategy.alignment.loss=kl"], "invalid value for 'strategy.alignment.loss': 'kl'"),
    (["strategy.alignment.mode=soft"], "invalid value for 'strategy.alignment.mode': 'soft'"),
    (["strategy.alignment.kd_weight=2"], "invalid value for 'strategy.alignment.kd_weight': 2.0"),
    (["strategy.alignment.temperature=0"], "invalid value for 'strategy.alignment.temperature': 0.0"),
    (["strategy.alignment.top_k=-1"], "invalid value for 'strategy.alignment.top_k': -1"),
    (["strategy.alignment.top_k=8", "strategy.alignment.loss=jsd"], "invalid value for 'strategy.alignment.loss'"),
    (["strategy.alignment.mode=xtok"], "invalid value for 'strategy.alignment.mode': 'xtok' (allowed: auto, logit, "
                                       "cross_tokenizer, hidden, sequence)"),
    (["strategy.alignment.cross_tokenizer.uld_weight=-1"],
     "invalid value for 'strategy.alignment.cross_tokenizer.uld_weight': -1.0 (allowed: a weight >= 0"),
    (["strategy.alignment.cross_tokenizer.shared_weight=0", "strategy.alignment.cross_tokenizer.uld_weight=0"],
     "invalid value for 'strategy.alignment.cross_tokenizer.uld_weight': 0.0 (allowed: a weight >= 0, > 0 when"),
    (["strategy.alignment.cross_tokenizer.uld_over=rest"],
     "invalid value for 'strategy.alignment.cross_tokenizer.uld_over': 'rest' (allowed: full, unmatched)"),
    (["strategy.alignment.top_k=8", "strategy.alignment.mode=cross_tokenizer"],
     "invalid value for 'strategy.alignment.mode': 'cross_tokenizer' (allowed: auto or logit when top_k > 0"),
    # on-policy KD: the teacher must be able to score the student's own tokens
    (["strategy.alignment.on_policy.rate=1.5"], "invalid value for 'strategy.alignment.on_policy.rate': 1.5 (allowed: "
                                                "0 <= rate <= 1"),
    (["strategy.alignment.on_policy.temperature=0"],
     "invalid value for 'strategy.alignment.on_policy.temperature': 0.0 (allowed: a finite number > 0)"),
    (["strategy.alignment.on_policy.max_new_tokens=-1"],
     "invalid value for 'strategy.alignment.on_policy.max_new_tokens': -1"),
    (["strategy.alignment.on_policy.scorer=judge"],
     "invalid value for 'strategy.alignment.on_policy.scorer': 'judge' (allowed: auto, logits, verifier, logprobs)"),
    (["teacher=openai_endpoint", "teacher.base_url=http://127.0.0.1:9/v1", "teacher.model=m",
      "strategy.alignment.on_policy.rate=0.5"],
     "invalid value for 'student.name_or_path': None (allowed: a checkpoint whose tokenizer is the served teacher's"),
    (["teacher=openai_endpoint", "teacher.base_url=http://127.0.0.1:9/v1", "teacher.model=m",
      "strategy.alignment.on_policy.rate=0.5", "strategy.alignment.on_policy.scorer=logits"],
     "invalid value for 'strategy.alignment.on_policy.scorer': 'logits' (allowed: logprobs or auto with "
     "teacher=openai_endpoint (kind openai gives no logits of given tokens)"),
    (["teacher=openai_endpoint", "teacher.base_url=http://127.0.0.1:9/v1", "teacher.model=m",
      "strategy.alignment.on_policy.rate=0.5", "strategy.alignment.mode=logit", "student.name_or_path=@STUDENT@"],
     "invalid value for 'strategy.alignment.mode': 'logit' (allowed: auto or sequence with on-policy KD scored by a "
     "served teacher"),
    (["strategy.alignment.on_policy.rate=0.5", "strategy.alignment.on_policy.scorer=logprobs"],
     "invalid value for 'strategy.alignment.on_policy.scorer': 'logprobs' (allowed: verifier or auto with "
     "teacher=task_engine (the logprobs scorer is an OpenAI-compatible server"),
    # ... and a served teacher's server must answer and score given tokens (probed when the distill stage will run)
    (["pipeline.stages=[data,distill]", "teacher=openai_endpoint", "teacher.base_url=http://127.0.0.1:9/v1",
      "teacher.model=m", "strategy.alignment.on_policy.rate=0.5", "student.name_or_path=@STUDENT@"],
     "invalid value for 'teacher.base_url': 'http://127.0.0.1:9/v1' (allowed: a reachable OpenAI-compatible server"),
    (["pipeline.stages=[data,distill]", "teacher=openai_endpoint", "teacher.base_url=@CHAT_ONLY@", "teacher.model=m",
      "strategy.alignment.on_policy.rate=0.5", "student.name_or_path=@STUDENT@"],
     "scores no given tokens; on-policy KD needs /v1/completions with echo + logprobs or vLLM's prompt_logprobs"),
    (["pipeline.stages=[data,distill]", "teacher=openai_endpoint", "teacher.base_url=@ECHO_ONLY@", "teacher.model=m",
      "teacher.score_api=prompt_logprobs", "strategy.alignment.on_policy.rate=0.5", "student.name_or_path=@STUDENT@"],
     "invalid value for 'teacher.score_api': 'prompt_logprobs' (allowed: auto or echo: the server at "
     "http://127.0.0.1:"),
    (["+task=gsm8k", "task.hf_dataset=openai/gsm8k", "task.hf_config=main", "strategy.alignment.on_policy.rate=0.5"],
     "invalid value for 'strategy.alignment.on_policy.scorer': 'auto' (allowed: logits with a white-box teacher: "
     "task gsm8k has no line judge"),
    (["strategy.alignment.on_policy.rate=0.5", "strategy.alignment.on_policy.scorer=logits"],
     "invalid value for 'strategy.alignment.on_policy.scorer': 'logits' (allowed: verifier or auto with "
     "teacher=task_engine"),
    (["strategy=injection", "strategy.alignment.on_policy.rate=0.5"],
     "invalid value for 'strategy.alignment.on_policy.rate': 0.5 (allowed: 0 with strategy=injection"),
    (["teacher=tiny_teacher", "teacher.name_or_path=/", "strategy.alignment.top_k=8",
      "strategy.alignment.on_policy.rate=0.5"],
     "invalid value for 'strategy.alignment.top_k': 8 (allowed: 0 with on-policy KD"),
    (["strategy.target=essay"], "invalid value for 'strategy.target': 'essay' (allowed: rationale, answer)"),
    (["strategy.probe_threshold=1.5"], "invalid value for 'strategy.probe_threshold': 1.5"),
    (["strategy.injection.corpus_weight=1"], "invalid value for 'strategy.injection.corpus_weight': 1.0"),
    # trainer (these runs would train, so Lightning itself judges the machine-dependent settings)
    (["trainer.max_steps=0"], "invalid value for 'trainer.max_steps': 0"),
    (["trainer.max_steps=lots"], "invalid value for 'trainer.max_steps': 'lots' (allowed: an integer)"),
    (["trainer.batch_size=0"], "invalid value for 'trainer.batch_size': 0"),
    (["trainer.length_slices=-1"], "invalid value for 'trainer.length_slices': -1"),
    (["trainer.precision=fp8"], "invalid value for 'trainer.precision': 'fp8' (allowed: one of 64, 32, 16,"),
    ([PLAN, "trainer.precision=fp8"], "invalid value for 'trainer.precision': 'fp8' (allowed: one of"),
    (["trainer.precision=transformer-engine"],
     "invalid value for 'trainer.precision': 'transformer-engine' on this machine"),
    (["trainer.distributed=ddp_notreal"], "invalid value for 'trainer.distributed': 'ddp_notreal' on this machine"),
    (["trainer=tpu"], "Could not find 'trainer/tpu'"),
    # deploy (export)
    (["deploy=tensorrt"], "Could not find 'deploy/tensorrt'"),
    (["deploy.onnx_opset=99"], "invalid value for 'deploy.onnx_opset': 99"),
    (["deploy.threads=0"], "invalid value for 'deploy.threads': 0"),
    # serve
    (["serve.port=70000"], "invalid value for 'serve.port': 70000"),
    # evaluate
    (["evaluate.samples=0"], "invalid value for 'evaluate.samples': 0 (allowed: 1 (greedy) or more"),
    (["evaluate.temperature=0"], "invalid value for 'evaluate.temperature': 0.0 (allowed: a temperature > 0)"),
    (["serve.host=0.0.0.0.1"], "invalid value for 'serve.host': '0.0.0.0.1'"),
    (["serve.backend=tensorrt"], "invalid value for 'serve.backend': 'tensorrt' (allowed: auto, onnx, torch)"),
    (["serve.api_key=secret"], "invalid value for 'serve.api_key'"),
    # constraints (the planner's)
    (["constraints.budget_usd=-3"], "invalid value for 'constraints.budget_usd': -3.0 (allowed: dollars > 0)"),
    (["constraints.deadline_h=0"], "invalid value for 'constraints.deadline_h': 0.0"),
    (["constraints.min_accuracy=2"], "invalid value for 'constraints.min_accuracy': 2.0"),
    # servers (the catalog) and planner
    (["servers=mars"], "Could not find 'servers/mars'"),
    (["servers.pricing=cheap"], "invalid value for 'servers.pricing': 'cheap' (allowed: on_demand, spot)"),
    (["servers.min_availability=2"], "invalid value for 'servers.min_availability': 2.0"),
    (["planner.selection=best"], "invalid value for 'planner.selection': 'best' (allowed: score, knee)"),
    (["planner.search=grid"], "invalid value for 'planner.search': 'grid'"),
    # pipeline, unknown keys, syntax
    (["pipeline.stages=[plan,train]"], "invalid value for 'pipeline.stages'"),
    (["trainer.max_stepz=5"], "unknown key 'trainer.max_stepz'"),
    # plan -> execute: pins that leave nothing runnable, weights absent, knobs, prices
    (["student=qwen2p5_0p5b"], "no runnable candidate"),
    (["constraints.min_accuracy=0.5"], "no runnable plan meets the constraints"),
    (["planner.train_shares=[0]"], "invalid value for 'planner.train_shares'"),
    (["servers.local_price_hour=-1"], "invalid value for 'servers.local_price_hour'"),
    (["pipeline.stages=[data,distill]", "student=qwen2p5_0p5b"], "invalid value for 'student.name_or_path'"),
    # logger (the package of a chosen logger is checked when training will run)
    (["pipeline.stages=[data,distill]", "logger=wandb"], "invalid value for 'logger'"),
    # paths
    (["paths.cache=s3://stratos-no-bucket/cache"], "invalid value for 'paths.cache'"),
    (["trainer.max_steps=["], "cannot parse a command-line override"),
]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """What @NAME@ in a row stands for: a student checkpoint, and servers that answer chat only (@CHAT_ONLY@) or
    score given tokens with legacy echo only (@ECHO_ONLY@, like OpenAI's legacy API)."""
    from tests.helpers.tiny_export import build_tiny_checkpoint
    from tests.models.chat_server import ChatServer, Reply, openai_echo

    def echo_only(body, attempt):
        if "prompt_logprobs" in body:
            return Reply(kind="status", status=400, message="Unrecognized request argument supplied: prompt_logprobs")
        return Reply(body=openai_echo(body))

    student = build_tiny_checkpoint(str(tmp_path_factory.mktemp("student")), hidden=32, layers=1)
    with ChatServer() as chat_only, ChatServer(completions=echo_only) as echo:
        yield {"@STUDENT@": student, "@CHAT_ONLY@": chat_only.url, "@ECHO_ONLY@": echo.url}


def cli(args: list[str], root) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "stratos", *args, f"paths.output_root={root}"], capture_output=True,
                          text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)


def test_the_table_covers_every_group():
    assert len(CASES) >= 40
    keys = {o.split("=")[0].lstrip("+").split(".")[0] for overrides, _ in CASES for o in overrides}
    assert {"task", "teacher", "student", "strategy", "trainer", "deploy", "serve", "constraints", "servers",
            "planner", "pipeline"} <= keys


def cli_args(overrides: list[str]) -> list[str]:
    trains = any(o.startswith(("trainer", "pipeline")) for o in overrides)  # keep their stages
    task = [] if any(o.startswith("+task=") for o in overrides) else ["+task=mahjong"]
    return [*task, *overrides, *([] if trains else [PLAN])]


@pytest.fixture(scope="module")
def launched(request, tmp_path_factory, stand_ins):
    """The selected rows' CLI runs, started as soon as the first row asks: two at a time in one pytest
    process, one at a time under pytest-xdist (the other worker has the other core).

    Each row is a fresh interpreter whose start (imports, Hydra composition) is CPU-bound; on the 2-core CI
    machine two at a time take ~55 % of the serial time. Every row still gets its own output root. Under
    xdist every worker collects every row, so the rows are one xdist group (the `bad_input` mark below):
    the one worker that runs them launches them once.
    """
    name = "test_bad_input_is_one_line_exit_2_and_writes_nothing"
    selected = [tuple(item.callspec.params["overrides"]) for item in request.session.items
                if getattr(item, "originalname", None) == name]
    pool = ThreadPoolExecutor(max_workers=1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
    runs = {}
    for overrides in selected:
        root = tmp_path_factory.mktemp("bad") / "out"
        args = [_fill(o, stand_ins) for o in cli_args(list(overrides))]
        runs[overrides] = (root, pool.submit(cli, args, root))
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


def _fill(override: str, stand_ins: dict) -> str:
    for name, value in stand_ins.items():
        override = override.replace(name, value)
    return override


@pytest.mark.xdist_group("bad_input")
@pytest.mark.parametrize("overrides,needle", CASES, ids=[" ".join(o) for o, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(overrides, needle, launched):
    root, future = launched[tuple(overrides)]
    r = future.result()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert len(lines) == 1 and lines[0].startswith("stratos: error: "), r.stderr[-1500:]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in r.stdout + r.stderr
    assert not root.exists() or not any(root.rglob("*"))


@pytest.mark.parametrize("override", ["task.n_train=0", "student.arch.heads=3", "serve.port=70000"])
def test_a_bad_value_is_refused_before_torch_or_lightning_is_imported(override, tmp_path):
    """The cheap checks run first and import only their owner: a mistake costs a second, not the ~5 s that
    importing torch, transformers and Lightning takes here (stratos/checks.py)."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "stratos", "+task=mahjong", override,
                        f"paths.output_root={tmp_path / 'out'}"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and f"invalid value for '{override.split('=')[0]}'" in r.stderr, r.stderr[-800:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"torch", "transformers", "lightning", "peft"}, sorted(imported & {"torch", "lightning"})
