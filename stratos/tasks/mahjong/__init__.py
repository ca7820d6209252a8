"""Mahjong winning-tile task (`+task=mahjong`): which tiles complete this 13-tile closed hand?

Modules, bottom up: `tiles` (notations), `waits` (fast exact solver), `reference` (the `mahjong`
rules library, which the fast solver is checked against), `rationale` (write + verify step-by-step
answers), `answer` (read answers from model text), `synthesis` (reverse synthesis + resampling), `jsonl` (the public benchmark
format, `score_rows`), `rules` (corpus text) and `task` (`MahjongTask`, the Task protocol).
"""

from stratos.tasks.mahjong.jsonl import read_benchmark, score_rows, write_benchmark
from stratos.tasks.mahjong.task import MahjongTask

__all__ = ["MahjongTask", "read_benchmark", "score_rows", "write_benchmark"]
