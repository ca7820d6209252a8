"""`strategy` group (owner: stratos/distill/): how knowledge moves from teacher to student."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from stratos.config.choices import AlignmentMode, KDLoss, OnPolicyScorer, TrainTarget, UldOver


@dataclass
class CrossTokenizerConfig:
    """Logit KD across vocabularies (mode cross_tokenizer, stratos/distill/cross_tokenizer_loss.py):
    KD = shared_weight * T^2 * D(renormalised shared-token distributions) + uld_weight * ULD(sorted probs)."""

    shared_weight: float = 1.0  # the divergence on tokens both vocabularies hold (identical bytes)
    uld_weight: float = 1.0  # L1 between the sorted probability vectors (ULD)
    uld_over: UldOver = UldOver.full  # full: whole distributions; unmatched: tokens outside the shared vocabulary


@dataclass
class OnPolicyConfig:
    """On-policy (student-rollout) KD, GKD-style (stratos/distill/on_policy.py, rollouts.py): each training row is,
    with probability `rate`, replaced by the student's own sampled completion of its prompt, which the scorer then
    grades: the live teacher's distributions at every sampled token (KD only, no CE on the student's own tokens),
    or the task's line judge (CE on the sample's correct leading lines + the engine's continuation)."""

    rate: float = 0.0  # lambda: share of training rows replaced by student samples (0 = off, 1 = fully on-policy)
    temperature: float = 1.0  # sampling temperature of the student's rollouts (not the KD temperature)
    max_new_tokens: int = 0  # rollout length limit; 0 = the task's generation budget
    scorer: OnPolicyScorer = OnPolicyScorer.auto  # which teacher scores the rollouts


@dataclass
class AlignmentConfig:
    mode: AlignmentMode = AlignmentMode.auto
    loss: KDLoss = KDLoss.forward_kl
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
    cross_tokenizer: CrossTokenizerConfig = field(default_factory=CrossTokenizerConfig)
    on_policy: OnPolicyConfig = field(default_factory=OnPolicyConfig)


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
    target: TrainTarget = TrainTarget.rationale  # what the student learns to write
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    injection: InjectionConfig = field(default_factory=InjectionConfig)
