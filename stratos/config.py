"""Structured config: one dataclass per Hydra group, stored in the ConfigStore as `base_<group>`.

Every YAML option in `conf/<group>/` lists `base_<group>` first in its defaults, so Hydra
type-checks it against the dataclass here. Range checks that types cannot express live in
`validate()` and raise `UserError` (one line: key, value, what is allowed; exit 2).

Owners (where each group's `_target_` lives):
  cloud -> stratos/plan/cost.py          teacher, student -> stratos/models/
  strategy -> stratos/distill/           task -> stratos/data/ (+ stratos/evaluate/)
  deploy -> stratos/export/              trainer, pipeline, paths, planner -> infrastructure
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from stratos.errors import bad_value


# ---------------------------------------------------------------- models (teacher / student)
@dataclass
class ModelCard:
    """What the planner knows about a model before loading it."""

    params_b: float = 0.0  # parameters, billions
    layers: int = 0
    hidden: int = 0
    heads: int = 0
    kv_heads: int = 0
    vocab: int = 0
    context: int = 2048
    tokenizer_family: str = "unknown"  # same family => logit KD allowed
    chat_template: bool = False
    licence: str = "unknown"
    prior_scores: dict[str, float] = field(default_factory=dict)  # task -> accuracy in [0, 1]


@dataclass
class TeacherConfig:
    _target_: str = MISSING
    name: str = MISSING
    kind: str = MISSING  # engine | hf | openai
    name_or_path: Optional[str] = None  # hf: hub name or local path
    base_url: Optional[str] = None  # openai: e.g. http://127.0.0.1:8000/v1
    model: Optional[str] = None  # openai: served model name
    api_key_env: str = "OPENAI_API_KEY"  # openai: env var holding the key (never the key itself)
    dtype: str = "float32"
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_logprobs: int = 0
    concurrency: int = 4
    max_retries: int = 5
    timeout_s: float = 60.0
    backoff_base_s: float = 0.5  # openai: retry r waits ~U(c/2, c), c = min(backoff_max_s, base * 2^r) ...
    backoff_max_s: float = 30.0  # ... unless the server sent Retry-After (honoured)
    cache_dir: Optional[str] = "${paths.cache}"  # openai: response cache (fsspec); null = no cache
    progress_every_s: float = 10.0  # openai: progress log line period during long runs
    card: ModelCard = field(default_factory=ModelCard)


@dataclass
class ArchConfig:
    """Architecture for a student built from config (no download)."""

    family: str = "llama"  # llama | qwen2 | gpt2
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 512
    max_position: int = 512


@dataclass
class PeftConfig:
    method: str = "none"  # none (full fine-tuning) | lora
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class StudentConfig:
    _target_: str = MISSING
    name: str = MISSING
    name_or_path: Optional[str] = None  # None => build from `arch` with a locally trained tokenizer
    arch: ArchConfig = field(default_factory=ArchConfig)
    tokenizer_vocab: int = 384  # size of the locally trained BPE (only when name_or_path is None)
    tokenizer_from: str = "auto"  # built student: auto (a white-box teacher's, else trained) | teacher | train
    dtype: str = "float32"
    peft: PeftConfig = field(default_factory=PeftConfig)
    card: ModelCard = field(default_factory=ModelCard)


# ---------------------------------------------------------------- strategy (distill)
@dataclass
class AlignmentConfig:
    mode: str = "auto"  # auto | logit | hidden | sequence
    loss: str = "forward_kl"  # forward_kl | reverse_kl | jsd | skew_kl | skew_reverse_kl | tvd
    temperature: float = 2.0
    kd_weight: float = 0.5  # total = (1 - w) * CE + w * KD, both per-token means
    beta: float = 0.5  # jsd mixture
    alpha: float = 0.1  # skew KL mixture
    hidden_weight: float = 0.0
    top_k: int = 0  # >0: KD from the offline top-k logprob store
    chunk_size: int = 0  # 0 = auto (~32 MiB per (chunk, V) buffer)
    verify: bool = True  # sequence KD: keep a teacher rationale only if the task's verifier accepts it
    n_samples: int = 4  # sequence KD: draws per item for rejection sampling (greedy teachers get 1)
    blackbox_kd: bool = True  # sequence KD: add token-level KD from the server's top-k logprobs when they map


@dataclass
class InjectionConfig:
    corpus_paths: list[str] = field(default_factory=list)  # extra user documents (fsspec)
    corpus_weight: float = 0.2  # share of the loss (and of the rows): (1-w)*SFT mean + w*corpus mean
    corpus_window: int = 0  # tokens per corpus row; 0 => the 90th percentile of supervised lengths
    rules_in_prompt: bool = True


@dataclass
class StrategyConfig:
    _target_: str = MISSING
    name: str = MISSING  # auto | alignment | injection | labels_only
    probe_n: int = 50
    probe_threshold: float = 0.6  # teacher probe accuracy at or above => alignment
    target: str = "rationale"  # what the student learns to write: rationale (CoT + answer) | answer
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    injection: InjectionConfig = field(default_factory=InjectionConfig)


# ---------------------------------------------------------------- deploy (export) + budgets
@dataclass
class VllmConfig:
    """`vllm serve` settings (stratos/export/vllm_target.py); 0 / auto => from the plan or the model."""

    tensor_parallel_size: int = 0  # 0 => the plan's GPU count, reduced until the heads split evenly
    max_model_len: int = 0  # 0 => the model's context
    dtype: str = "auto"  # auto => bfloat16 on GPUs with bf16, float16 on older ones
    gpu_memory_utilization: float = 0.9
    lora: bool = False  # serve LoRA adapter(s) on the base model instead of the merged checkpoint
    lora_modules: dict[str, str] = field(default_factory=dict)  # extra adapters: served name -> local dir
    smoke_timeout_s: float = 600.0  # smoke test (only when vllm is importable): wait for the server


@dataclass
class DeployConfig:
    _target_: str = MISSING
    name: str = MISSING  # onnx | vllm
    onnx_opset: int = 17
    onnx_dynamo: bool = False
    kv_cache: bool = True
    quantize_int8: bool = False
    parity_tol: float = 1e-4
    parity_prompts: int = 8  # test prompts for the logit/greedy parity checks
    bench_prompts: int = 8  # quick ONNX-vs-torch speed figures in the manifest (0 => skip)
    bench_new_tokens: int = 32
    quant_eval_n: int = 32  # test rows graded with fp32 and int8 graphs (accuracy change)
    served_model_name: Optional[str] = None  # None => the student's name
    vllm: VllmConfig = field(default_factory=VllmConfig)
    # serving (python -m stratos.serve, or after the pipeline when serve=true)
    serve: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "auto"  # auto (onnx when exported, else torch) | onnx | torch
    api_key_env: str = "STRATOS_API_KEY"  # env var holding the API key; unset or empty => no auth
    max_tokens: int = 1024  # per-request cap on generated tokens
    max_concurrency: int = 4  # requests generating at once
    max_queue: int = 64  # requests waiting beyond that; more => 429
    max_body_bytes: int = 1048576
    threads: int = 1  # ONNX Runtime / torch intra-op threads per request
    # user constraints the planner enforces
    budget_usd: float = 100.0
    deadline_h: float = 24.0
    latency_slo_ms: float = 200.0  # per output token, p50
    min_accuracy: float = 0.0
    qps: float = 1.0


# ---------------------------------------------------------------- cloud (plan/cost.py)
@dataclass
class SlurmConfig:
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    time_min: int = 60
    # read by conf/hydra/launcher/stratos_slurm*.yaml (None => the cluster's default)
    cpus_per_task: Optional[int] = None
    mem_gb: Optional[int] = None
    gpus_per_node: Optional[int] = None  # stratos_slurm; stratos_slurm_gpu uses trainer.devices
    max_requeue: int = 3  # requeues after *time-outs*; preemptions requeue without limit
    signal_delay_s: int = 120  # Slurm sends USR2 this long before the time limit: checkpoint + requeue
    array_parallelism: int = 256  # sweep jobs running at once


@dataclass
class CloudConfig:
    _target_: str = MISSING
    name: str = MISSING
    catalog: str = "builtin"  # builtin | any fsspec path to YAML/CSV/JSON
    include_local: bool = True
    synthetic_nodes: int = 0  # >0: generate a synthetic catalog of this many nodes (scale tests)
    user_region: str = "us-east"
    region_allowlist: list[str] = field(default_factory=list)  # empty => all
    pricing: str = "on_demand"  # on_demand | spot
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    # catalog rows when catalog=builtin (conf/cloud/catalog.yaml bundles real server types; fields in
    # stratos/plan/catalog.py): name, provider, region, gpu, gpu_count, price_hour, spot_hour, ...
    servers: list[dict[str, Any]] = field(default_factory=list)
    run_server: str = "local"  # catalog name of the machine the pipeline itself runs on (ledger baseline)
    api_usd_per_mtok: float = 2.0  # price of API-teacher (kind openai) tokens, USD per million
    min_availability: float = 0.0  # drop servers whose capacity availability (0..1) is below this


# ---------------------------------------------------------------- task (data + evaluate)
@dataclass
class TaskConfig:
    _target_: str = MISSING
    name: str = MISSING
    n_train: int = 1000
    n_val: int = 100
    n_test: int = 200
    seed: int = 0
    source: Optional[str] = None  # fsspec path of user data instead of synthesis (task-specific format)


@dataclass
class MahjongTaskConfig(TaskConfig):
    variant: str = "basic"  # basic (4 melds + pair) | riichi (+ seven pairs, thirteen orphans)
    nontenpai_rate: float = 0.1  # share of hands with no winning tile (empty answer)
    # target share of hands by number of winning tiles (keys "1".."9+"); empty => natural distribution
    wait_distribution: dict[str, float] = field(default_factory=dict)
    notation: str = "spaced"  # how hands are written in prompts: spaced (1m 2m 3m) | compact (123m) | unicode


@dataclass
class MathTaskConfig(TaskConfig):
    min_steps: int = 2
    max_steps: int = 4
    hf_dataset: Optional[str] = None  # e.g. openai/gsm8k (needs the datasets package + network/cache)
    hf_config: Optional[str] = None  # dataset config name, e.g. main (GSM8K) ; None => the dataset's default
    distractor_rate: float = 0.0  # synthetic: share of problems with one irrelevant numeric sentence
    max_value: int = 999  # synthetic: largest value any step may produce (<= 999 for aime)


# ---------------------------------------------------------------- infrastructure
@dataclass
class TrainerConfig:
    accelerator: str = "cpu"
    devices: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp | deepspeed (Lightning's engines)
    precision: str = "32-true"
    max_steps: int = 1000
    max_minutes: float = 0.0  # >0: stop training after this wall time (checkpointed)
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    val_every_n_steps: int = 200
    checkpoint_every_n_steps: int = 200
    num_threads: int = 0  # 0 => torch default
    num_workers: int = 0
    group_by_length: bool = False  # batches of similar length: less padding, but skewed batches (see README)
    # forwards on <= N length-sorted slices of each batch: same batch, less padding computed (see README);
    # 0 = auto: 4 at 32-bit precision, 1 (off) under mixed precision, where it was measured to cost time
    length_slices: int = 0
    progress_bar: bool = True


@dataclass
class EvaluateConfig:
    batch_size: int = 64
    max_new_tokens: int = 0  # 0 => task default
    n_latency: int = 16  # answers timed one by one for latency per answer


@dataclass
class PlannerConfig:
    teachers: list[str] = field(default_factory=list)  # conf/teacher options to consider; empty => all
    students: list[str] = field(default_factory=list)  # conf/student options to consider; empty => all
    strategies: list[str] = field(default_factory=lambda: ["alignment", "injection"])
    train_tokens: float = 2.0e7
    selection: str = "score"  # score (deployment score) | knee
    weights: dict[str, float] = field(
        default_factory=lambda: {"accuracy": 0.4, "latency": 0.2, "train_time": 0.1, "cost": 0.3}
    )
    history: Optional[str] = "${paths.cache}/planner_history.json"  # calibration history (fsspec); null = off
    # workload shape (tokens per sequence) the estimators use
    seq_len: int = 512  # training sequence length (prompt + rationale)
    prompt_tokens: int = 128  # serving: prompt length
    output_tokens: int = 256  # serving: answer length
    data_epochs: float = 3.0  # train_tokens / data_epochs = unique tokens the teacher writes (synthesis)
    rejection_samples: float = 2.0  # sequence-level KD: teacher samples per kept rationale
    # extra decision variables; more than one value each multiplies the search space
    lora_ranks: list[int] = field(default_factory=list)  # 0 = full fine-tuning; empty => each student's peft
    quant_bits: list[int] = field(default_factory=lambda: [16])  # serving weight precision: 16 | 8 | 4
    micro_batch: list[int] = field(default_factory=lambda: [8])  # training sequences per GPU per step
    gpus: list[int] = field(default_factory=list)  # GPUs used per node; empty => all of the node
    search: str = "auto"  # auto (enumerate up to enumerate_limit, else nsga2) | enumerate | nsga2 | nsga3
    enumerate_limit: int = 2_000_000
    pop_size: int = 200
    generations: int = 150
    log_scale: bool = True  # deployment score normalises latency, time and cost in log10
    front_max: int = 1000  # front points written to plan.json (best by score first)
    seed: int = 0  # NSGA and synthetic catalogs (kept here so the plan stage's config hash covers it)


@dataclass
class PipelineConfig:
    stages: list[str] = field(default_factory=lambda: ["plan", "data", "distill", "evaluate", "export", "report"])
    resume: bool = True  # reuse finished stages whose config hash matches


@dataclass
class PathsConfig:
    output_root: str = "outputs"
    cache: str = "${paths.output_root}/cache"  # shared, content-addressed (teacher logits, API calls)


@dataclass
class StratosConfig:
    cloud: CloudConfig = MISSING
    teacher: TeacherConfig = MISSING
    student: StudentConfig = MISSING
    strategy: StrategyConfig = MISSING
    deploy: DeployConfig = MISSING
    task: Any = None  # added with +task=<name>
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    exp_name: str = "default"


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=StratosConfig)
    cs.store(group="cloud", name="base_cloud", node=CloudConfig)
    cs.store(group="teacher", name="base_teacher", node=TeacherConfig)
    cs.store(group="student", name="base_student", node=StudentConfig)
    cs.store(group="strategy", name="base_strategy", node=StrategyConfig)
    cs.store(group="deploy", name="base_deploy", node=DeployConfig)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)
    cs.store(group="task", name="base_task", node=TaskConfig)
    cs.store(group="task", name="base_task_mahjong", node=MahjongTaskConfig)
    cs.store(group="task", name="base_task_math", node=MathTaskConfig)
    from stratos.acme.config import register_acme_configs  # strategy=acme, cloud=edge schemas

    register_acme_configs()


# ---------------------------------------------------------------- value checks
STAGES = ("plan", "data", "distill", "evaluate", "export", "acme", "report")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise bad_value(key, value, allowed)


def _local_path_exists(value: Any) -> bool:
    """False only for a local filesystem path that does not exist (hub ids and URLs pass)."""
    if not value or "://" in str(value) or not str(value).startswith(("/", "./", "../", "~")):
        return True
    return os.path.exists(os.path.expanduser(str(value)))


def validate(cfg: DictConfig) -> None:
    """Range checks the types cannot express. Raises UserError on the first bad value."""
    if cfg.get("task") is None:
        from stratos.errors import UserError

        raise UserError("no task selected: add +task=<name> (choices: mahjong, gsm8k, aime)")
    t = cfg.task
    for k in ("n_train", "n_val", "n_test"):
        _check(int(t[k]) > 0, f"task.{k}", t[k], "an integer > 0")
    if t.name == "mahjong":
        _check(t.variant in ("basic", "riichi"), "task.variant", t.variant, "basic, riichi")
        _check(0.0 <= float(t.nontenpai_rate) < 1.0, "task.nontenpai_rate", t.nontenpai_rate, "0 <= rate < 1")
        _check(t.notation in ("spaced", "compact", "unicode"), "task.notation", t.notation, "spaced, compact, unicode")
    tr = cfg.trainer
    _check(int(tr.max_steps) > 0, "trainer.max_steps", tr.max_steps, "an integer > 0")
    _check(int(tr.batch_size) > 0, "trainer.batch_size", tr.batch_size, "an integer > 0")
    _check(float(tr.lr) > 0, "trainer.lr", tr.lr, "a number > 0")
    _check(int(tr.length_slices) >= 0, "trainer.length_slices", tr.length_slices,
           "an integer >= 0 (0 = auto, 1 = one forward over the whole padded batch)")
    _check(float(tr.max_minutes) >= 0, "trainer.max_minutes", tr.max_minutes, "minutes >= 0 (0 = no limit)")
    d = cfg.deploy
    _check(float(d.budget_usd) > 0, "deploy.budget_usd", d.budget_usd, "dollars > 0")
    _check(float(d.deadline_h) > 0, "deploy.deadline_h", d.deadline_h, "hours > 0")
    _check(float(d.latency_slo_ms) > 0, "deploy.latency_slo_ms", d.latency_slo_ms, "milliseconds > 0")
    _check(0.0 <= float(d.min_accuracy) <= 1.0, "deploy.min_accuracy", d.min_accuracy, "0 <= accuracy <= 1")
    s = cfg.strategy
    _check(s.name in ("auto", "alignment", "injection", "labels_only", "acme"), "strategy.name", s.name,
           "auto, alignment, injection, labels_only, acme")
    if s.name == "acme":
        from stratos.acme.config import validate_acme

        validate_acme(s, cfg.cloud)
    _check(s.target in ("rationale", "answer"), "strategy.target", s.target, "rationale, answer")
    _check(0.0 <= float(s.alignment.kd_weight) <= 1.0, "strategy.alignment.kd_weight", s.alignment.kd_weight,
           "0 <= weight <= 1")
    _check(float(s.alignment.temperature) > 0, "strategy.alignment.temperature", s.alignment.temperature, "> 0")
    _check(cfg.student.tokenizer_from in ("auto", "teacher", "train"), "student.tokenizer_from",
           cfg.student.tokenizer_from, "auto, teacher, train")
    _check(int(s.alignment.top_k) >= 0, "strategy.alignment.top_k", s.alignment.top_k,
           "an integer >= 0 (0 = live teacher)")
    _check(int(s.alignment.top_k) == 0 or s.alignment.mode in ("auto", "logit"), "strategy.alignment.mode",
           s.alignment.mode, "auto or logit when top_k > 0 (the top-k store holds logits, not hidden states)")
    _check(int(s.alignment.top_k) == 0 or s.alignment.loss == "forward_kl", "strategy.alignment.loss",
           s.alignment.loss, "forward_kl when top_k > 0 (the other losses need the full teacher distribution)")
    _check(0.0 <= float(s.injection.corpus_weight) < 1.0, "strategy.injection.corpus_weight",
           s.injection.corpus_weight, "0 <= weight < 1 (the corpus' share of the loss)")
    _check(int(s.injection.corpus_window) >= 0, "strategy.injection.corpus_window", s.injection.corpus_window,
           "an integer >= 0 (0 = the 90th percentile of supervised lengths)")
    _check(cfg.student.peft.method in ("none", "lora"), "student.peft.method", cfg.student.peft.method, "none, lora")
    bad = [x for x in cfg.pipeline.stages if x not in STAGES]
    _check(not bad and len(cfg.pipeline.stages) > 0, "pipeline.stages", list(cfg.pipeline.stages),
           f"a non-empty list from {', '.join(STAGES)}")
    _check(cfg.teacher.kind in ("engine", "hf", "openai"), "teacher.kind", cfg.teacher.kind, "engine, hf, openai")
    for key in ("teacher.name_or_path", "student.name_or_path", "task.source"):
        v = OmegaConf.select(cfg, key, default=None)
        _check(_local_path_exists(v), key, v, "an existing path, a hub id or an fsspec URL")
    # `???` in a YAML over a dataclass default of None merges to None, so required keys are checked here
    if cfg.teacher.kind == "hf":
        _check(bool(cfg.teacher.name_or_path), "teacher.name_or_path", cfg.teacher.name_or_path,
               "a hub id or a local checkpoint directory")
    if cfg.teacher.kind == "openai":
        _check(bool(cfg.teacher.base_url), "teacher.base_url", cfg.teacher.base_url, "an http(s) URL ending in /v1")
        _check(bool(cfg.teacher.model), "teacher.model", cfg.teacher.model, "the served model's name")
    _check(cfg.cloud.pricing in ("on_demand", "spot"), "cloud.pricing", cfg.cloud.pricing, "on_demand, spot")
