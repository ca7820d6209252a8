"""`task` group (owner: stratos/tasks/): what the student learns. Added with `+task=NAME`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from stratos.config.choices import HeldOutDistribution, MahjongVariant, RationaleFormat, TileNotation


@dataclass
class TaskConfig:
    """Every task's fields. The task classes take their constructor defaults from these dataclasses
    (the one place defaults live); a task's YAML sets only what differs for that task."""

    _target_: str = MISSING
    name: str = MISSING
    n_train: int = 2000
    n_val: int = 100
    n_test: int = 200
    seed: int = 0
    source: Optional[str] = None  # fsspec path of user data instead of synthesis (task-specific format)


@dataclass
class CurriculumStage:
    """One stage of `task.curriculum` (Mahjong): its share of the training rows (and so of the steps) and its mix."""

    share: float = 1.0
    # {} = the natural mix; keys as in `wait_distribution` ("1".."8", "9+"). Any-typed keys so that the command
    # line's `{3: 1, 4: 1}` (Hydra parses unquoted 3 as an int) is accepted; the task reads str(key).
    wait_distribution: dict[Any, float] = field(default_factory=dict)


# The flattest training mix of winning-tile counts the hand space allows at 50,000 hands (only 471 basic hands have 7
# winning tiles and 282 have 8), and the default curriculum that ends on it: three quarters of the training rows
# and steps on the task's own mix (`wait_distribution`, natural by default), the last quarter on the flat one.
# Measured in docs/evidence.md ("The default's curriculum"): the balanced split +6.4 points at equal steps (+12.9 at
# twice the steps), the natural one -11 (-17); the same stages flat-first lose on both.
FLAT_WAITS = {"1": 0.258, "2": 0.25, "3": 0.22, "4": 0.16, "5": 0.08, "6": 0.02, "7": 0.008, "8": 0.004}


@dataclass
class MahjongTaskConfig(TaskConfig):
    n_train: int = 50000  # synthesis is ~5k verified rows/s: data is cheap, steps are not
    n_val: int = 200
    n_test: int = 500
    variant: MahjongVariant = MahjongVariant.basic
    nontenpai_rate: float = 0.1  # share of hands with no winning tile (empty answer)
    # target share of hands by number of winning tiles (keys "1".."9+"); empty => natural distribution
    wait_distribution: dict[str, float] = field(default_factory=dict)
    # a staged curriculum (>= 2 stages, each {share, wait_distribution}; a stage's {} = `wait_distribution`):
    # the training rows are drawn stage by stage, each with its own mix and `share` of n_train, and train in
    # stage order, each stage for its share of the steps (stratos/distill/curriculum.py); [] = one mix,
    # `wait_distribution`. Held-out splits keep `wait_distribution`. Ignored with `source` (a file's rows
    # carry their own `curriculum_stage`). Default: 3/4 on `wait_distribution`, then 1/4 on FLAT_WAITS (above).
    curriculum: list[CurriculumStage] = field(
        default_factory=lambda: [CurriculumStage(share=3.0),
                                 CurriculumStage(share=1.0, wait_distribution=dict(FLAT_WAITS))])
    notation: TileNotation = TileNotation.spaced  # how hands are written in prompts
    # how the teacher's rationales reason: proof lines for the winning tiles, a search over every candidate
    # tile, or the open suits then that search (stratos/tasks/mahjong/search.py)
    rationale_format: RationaleFormat = RationaleFormat.proof
    # The headline test split (`evaluate/test/*`, test.jsonl): `balanced` = n_test hands shared equally by
    # 0..9 winning tiles (riichi: also 13); there are only 3 hands with 9 waits (1 with 13), which all go in,
    # so n_test 500 gives 55-56 per count. `natural` = the training mix above. The other distribution is
    # written and scored too, as split `test_natural` (or `test_balanced`) of the same size n_test: the
    # evaluation is seconds. Ignored with `source` (a file keeps its own mix: one test split).
    test_distribution: HeldOutDistribution = HeldOutDistribution.balanced


@dataclass
class MathTaskConfig(TaskConfig):
    min_steps: int = 2
    max_steps: int = 4
    hf_dataset: Optional[str] = None  # e.g. openai/gsm8k (needs the datasets package + network/cache)
    hf_config: Optional[str] = None  # dataset config name, e.g. main (GSM8K) ; None => the dataset's default
    distractor_rate: float = 0.0  # synthetic: share of problems with one irrelevant numeric sentence
    max_value: int = 999  # synthetic: largest value any step may produce (<= 999 for aime)
