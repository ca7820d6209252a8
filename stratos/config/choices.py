"""Every closed set of choices in the config, as Enums (one place to read what is allowed).

A bad value fails while Hydra composes (one line, exit 2). StrEnum members compare and hash
equal to their strings, so code reading `cfg.x == "lora"` and config hashes are unchanged; member
names equal their values because OmegaConf converts command-line strings to members by name.
"""

from __future__ import annotations

from enum import StrEnum


class TeacherKind(StrEnum):
    engine = "engine"  # the task's own verified solver
    hf = "hf"  # white-box weights (transformers)
    openai = "openai"  # an OpenAI-compatible endpoint (black box)


class ArchFamily(StrEnum):
    llama = "llama"
    qwen2 = "qwen2"
    gpt2 = "gpt2"


class PeftMethod(StrEnum):
    none = "none"  # full fine-tuning
    lora = "lora"


class TokenizerFrom(StrEnum):
    auto = "auto"  # a white-box teacher's tokenizer when there is one, else trained
    teacher = "teacher"
    train = "train"


class AlignmentMode(StrEnum):
    auto = "auto"
    logit = "logit"
    cross_tokenizer = "cross_tokenizer"  # logit KD across vocabularies (span alignment + shared KL + ULD)
    hidden = "hidden"
    sequence = "sequence"


class UldOver(StrEnum):
    """Which probabilities the ULD term of cross-tokenizer KD compares (sorted, L1)."""

    full = "full"  # the whole distributions (ULD, Boizard et al. 2024)
    unmatched = "unmatched"  # only tokens outside the shared vocabulary (TRL GOLD's hybrid)


class OnPolicyScorer(StrEnum):
    """Who scores the student's own samples in on-policy KD (stratos/distill/on_policy.py)."""

    auto = "auto"  # logits (white box), logprobs (an OpenAI-compatible server), verifier (the task engine)
    logits = "logits"  # the live white-box teacher's distributions at every sampled token (GKD)
    verifier = "verifier"  # the task judges each sample line by line and supplies the corrected continuation
    logprobs = "logprobs"  # a served teacher's top-k log-probs of the sampled tokens (stratos/models/openai_scoring.py)


class ScoreApi(StrEnum):
    """How an OpenAI-compatible server is asked for the log-probs of given tokens (stratos/models/openai_scoring.py)."""

    auto = "auto"  # prompt_logprobs when the server answers it, else echo (probed once)
    echo = "echo"  # legacy /v1/completions: echo=true, logprobs=k, max_tokens=0 (OpenAI, vLLM, stratos.serve)
    prompt_logprobs = "prompt_logprobs"  # vLLM's extra field: token-id keyed top-k per prompt position


class KDLoss(StrEnum):
    forward_kl = "forward_kl"
    reverse_kl = "reverse_kl"
    jsd = "jsd"
    skew_kl = "skew_kl"
    skew_reverse_kl = "skew_reverse_kl"
    tvd = "tvd"


class TrainTarget(StrEnum):
    rationale = "rationale"  # CoT + answer line
    answer = "answer"  # the answer line only


class ExportTarget(StrEnum):
    onnx = "onnx"
    vllm = "vllm"


class Pricing(StrEnum):
    on_demand = "on_demand"
    spot = "spot"


class Selection(StrEnum):
    score = "score"  # highest deployment score
    knee = "knee"  # knee of the Pareto front


class SearchMethod(StrEnum):
    auto = "auto"  # enumerate up to planner.enumerate_limit, else nsga2
    enumerate = "enumerate"
    nsga2 = "nsga2"
    nsga3 = "nsga3"


class MahjongVariant(StrEnum):
    basic = "basic"  # 4 melds + a pair
    riichi = "riichi"  # + seven pairs, thirteen orphans


class HeldOutDistribution(StrEnum):
    natural = "natural"  # the training mix (task.wait_distribution; {} = hands as players meet them)
    balanced = "balanced"  # equally many hands per number of winning tiles, 0 up to the variant's largest


class TileNotation(StrEnum):
    spaced = "spaced"  # 1m 2m 3m
    compact = "compact"  # 123m
    unicode = "unicode"


class RationaleFormat(StrEnum):  # stratos/tasks/mahjong/search.py compares them
    proof = "proof"  # one line per winning tile with its groups
    search = "search"  # one line per candidate tile: its groups, or "no"
    suits = "suits"  # the suits a winning tile can land in, then the search over them (basic rules)


class Backend(StrEnum):
    auto = "auto"  # the ONNX graph when exported, else the HF checkpoint
    onnx = "onnx"  # ONNX Runtime
    torch = "torch"  # transformers


class RouteBy(StrEnum):
    """How a multi-teacher run gives each training row its teacher (stratos/distill/routing.py)."""

    auto = "auto"  # the probe measures every teacher per task slice; each slice goes to its best teacher
    slice = "slice"  # `route.slices` maps task slices (e.g. Mahjong wait counts) to teacher ids
    column = "column"  # each row names its teacher in `route.column` (e.g. teacher_id)
