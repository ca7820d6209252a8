"""`+task=mahjong`: which tiles complete this 13-tile closed hand?

    task = MahjongTask(name="mahjong", n_train=20000, n_val=200, n_test=500, seed=0, source=None,
                       variant="basic", nontenpai_rate=0.1, wait_distribution={}, notation="spaced",
                       test_distribution="balanced")
    splits = task.build_splits()          # {"train", "val", "test" (balanced), "test_natural"}
    task.is_correct(splits["test"][0], "...\\nAnswer: 1m 4m")

A row (JSON-serialisable):
  id            16 hex chars of sha1("mahjong|<variant>|<compact hand>")
  question      "Hand: 1m 1m 1m 2m 3m 4m 5m 6m 7m 8m 9m 9m 9m\\nWinning tiles?"  (in `notation`)
  answer        "1m 2m 3m 4m 5m 6m 7m 8m 9m" | "none"  (ascending; Unicode tiles with notation=unicode)
  rationale     one verified line per winning tile + "Answer: ..." (see rationale.py)
  difficulty    "waits=N"
  hand          "1112345678999m" (compact, sorted)
  winning_tiles ["1m", "2m", ...] (compact names, ascending)
  n_waits       N
  variant       "basic" | "riichi"

Rows are synthesised (synthesis.py) or, with `source`, read from a benchmark JSONL (jsonl.py),
checked by the engine and split deterministically by seed.

`curriculum` (>= 2 stages, each {share, wait_distribution}; default MahjongTaskConfig's, stratos/config/task.py:
three quarters on `wait_distribution`, the last quarter on the flat FLAT_WAITS; [] = none): the training rows are
drawn stage by stage, n_train split by share, each stage with its own mix ({} = `wait_distribution`) and RNG
stream, and carry `curriculum_stage` (the stage's index), which the distill stage trains in order, each stage for
its share of the steps (stratos/distill/curriculum.py). Val and test splits are drawn before and keep
`wait_distribution`, so a curriculum never moves a held-out hand.

Two test splits of n_test hands are synthesised: the natural one (the training mix) and a balanced
one (equally many hands per number of winning tiles). `test_distribution` picks which is `test`, the
headline; the other is returned as `test_natural` / `test_balanced`, an extra held-out split the
evaluate stage scores as well. Either way each is the same set of hands (drawn in the order natural
test, balanced test, val, train), so switching the option only swaps their names. A `source` file
gives one test split in the file's own mix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from typing import Mapping, Optional, Sequence

from stratos.tasks.mahjong.answer import extract_tiles
from stratos.tasks.mahjong.jsonl import read_benchmark
from stratos.tasks.mahjong.rationale import (RationaleError, answer_text, format_rationale, read_answer_line,
                                             verify_line, verify_rationale)
from stratos.tasks.mahjong.rules import rules_text
from stratos.tasks.mahjong.search import NO, OPEN, format_search, verify_search
from stratos.tasks.mahjong.synthesis import BUCKETS, Example, Generator, synthesize_balanced, synthesize_split
from stratos.tasks.mahjong.tiles import (NAMES, TileError, format_compact, format_tiles, parse_hand, parse_tile,
                                        to_kinds)
from stratos.tasks.mahjong.waits import VARIANTS, Wait, solve
from stratos.tasks.base import ANSWER_PREFIX, Judgement, largest_remainder
from stratos.config import MahjongTaskConfig
from stratos.errors import UserError, bad_value

NOTATIONS = ("spaced", "compact", "unicode")
FORMATS = ("proof", "search", "suits")  # see stratos/tasks/mahjong/search.py
TEST_DISTRIBUTIONS = ("natural", "balanced")
# drawing order: the test splits first, so they do not move when n_train does
SPLITS = ("test_natural", "test_balanced", "val", "train")
# Generation budget (tokens) per variant and rationale format. With the students' 384-entry byte-level BPE
# trained on these texts the longest rationales measure ~130 tokens in proof lines (nine waits:
# 1112345678999m, any notation), ~150 as a search (the same hand: nine candidates, all winning; a hand
# of 31 losing candidates is shorter, `2m: no` is 2-3 tokens) and ~255 / ~290 in riichi (the 13-sided
# thirteen-orphans wait, Unicode). tests/tasks/mahjong/test_task.py re-measures and asserts a >= 15% margin.
MAX_NEW_TOKENS = {("basic", "proof"): 192, ("basic", "search"): 192, ("basic", "suits"): 192,
                  ("riichi", "proof"): 320, ("riichi", "search"): 352}


def _check_config(n_train, n_val, n_test, variant, nontenpai_rate, wait_distribution, notation,
                  test_distribution="balanced", rationale_format="proof") -> dict[str, float]:
    for key, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise bad_value(f"task.{key}", v, "an integer > 0")
    if variant not in VARIANTS:
        raise bad_value("task.variant", variant, ", ".join(VARIANTS))
    if notation not in NOTATIONS:
        raise bad_value("task.notation", notation, ", ".join(NOTATIONS))
    if rationale_format not in FORMATS:
        raise bad_value("task.rationale_format", rationale_format, ", ".join(FORMATS))
    if rationale_format == "suits" and variant != "basic":
        raise bad_value("task.rationale_format", rationale_format, "proof or search with task.variant=riichi (open "
                        "suits follow from 4 melds + a pair only)")
    if test_distribution not in TEST_DISTRIBUTIONS:
        raise bad_value("task.test_distribution", test_distribution, ", ".join(TEST_DISTRIBUTIONS))
    try:
        rate = float(nontenpai_rate)
    except (TypeError, ValueError):
        rate = math.nan
    if not 0.0 <= rate < 1.0:
        raise bad_value("task.nontenpai_rate", nontenpai_rate, "a number with 0 <= rate < 1")
    return _check_mix(wait_distribution, "task.wait_distribution")


def _check_mix(wait_distribution, where: str) -> dict[str, float]:
    """A wait mix as {bucket: share}; {} = natural."""
    dist: dict[str, float] = {}
    for k, v in dict(wait_distribution or {}).items():
        key = str(k)
        if key not in BUCKETS:
            raise bad_value(where, key, f"keys {', '.join(BUCKETS)}")
        x = _number(v)
        if not (x >= 0.0 and math.isfinite(x)):
            raise bad_value(f"{where}.{key}", v, "a share >= 0")
        dist[key] = x
    # all shares 0 means "no preference", i.e. natural: Hydra merges dict overrides, so from the
    # command line a dict can be zeroed key by key but never replaced by {}
    return dist if sum(dist.values()) > 0 else {}


def _number(v) -> float:
    try:
        return math.nan if isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        return math.nan


def check_curriculum(curriculum, n_train: int, source, task_mix: dict[str, float]
                     ) -> list[tuple[int, dict[str, float]]]:
    """`task.curriculum` as [(training rows, wait mix)] per stage; [] for none. Rows split n_train by share; a
    stage without a mix ({}) takes `task_mix` (task.wait_distribution; {} = natural). With `source` the synthesis
    stages do not apply, like the other synthesis options: a file's rows carry their own `curriculum_stage`."""
    stages = list(curriculum or [])
    if not stages or source:
        return []
    allowed = "a list of >= 2 stages {share: > 0, wait_distribution: {...}}, or [] for one mix"
    if len(stages) < 2:
        raise bad_value("task.curriculum", f"{len(stages)} stage", allowed)
    shares, mixes = [], []
    for i, st in enumerate(stages):
        if not isinstance(st, Mapping) or set(st) - {"share", "wait_distribution"}:
            raise bad_value(f"task.curriculum[{i}]", st, allowed)
        share = _number(st.get("share", 1.0))
        if not (share > 0 and math.isfinite(share)):
            raise bad_value(f"task.curriculum[{i}].share", st.get("share"), "a number > 0")
        shares.append(share)
        mixes.append(_check_mix(st.get("wait_distribution"), f"task.curriculum[{i}].wait_distribution")
                     or dict(task_mix))
    rows = largest_remainder(n_train, shares)
    if min(rows) == 0:
        raise bad_value("task.n_train", n_train, f"at least one training row per curriculum stage (rows {rows}), "
                        "or task.curriculum=[]")
    return list(zip(rows, mixes))


_D = MahjongTaskConfig  # the one place the defaults live
DEFAULT_CURRICULUM = tuple(dataclasses.asdict(st) for st in MahjongTaskConfig().curriculum)  # as plain mappings


class MahjongTask:
    """The Task protocol (stratos/tasks/base.py) for winning-tile questions.

    Built from `conf/task/mahjong.yaml` (`MahjongTaskConfig`); the defaults are that dataclass's.
    """

    def __init__(
        self,
        name: str = "mahjong",
        n_train: int = _D.n_train,
        n_val: int = _D.n_val,
        n_test: int = _D.n_test,
        seed: int = _D.seed,
        source: Optional[str] = _D.source,
        variant: str = _D.variant,
        nontenpai_rate: float = _D.nontenpai_rate,
        wait_distribution: Optional[Mapping[str, float]] = None,
        notation: str = _D.notation,
        test_distribution: str = _D.test_distribution,
        rationale_format: str = _D.rationale_format,
        curriculum: Optional[Sequence[Mapping]] = DEFAULT_CURRICULUM,
    ) -> None:
        self.wait_distribution = _check_config(n_train, n_val, n_test, variant, nontenpai_rate,
                                               wait_distribution, notation, test_distribution, str(rationale_format))
        self.rationale_format = str(rationale_format)
        self.curriculum = check_curriculum(curriculum, n_train, source, self.wait_distribution)  # [(rows, mix)]
        self.name = name
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.seed = seed
        self.source = source
        self.variant = variant
        self.nontenpai_rate = float(nontenpai_rate)
        self.notation = notation
        self.test_distribution = str(test_distribution)
        self.max_new_tokens = MAX_NEW_TOKENS[(variant, self.rationale_format)]
        self.sizes = {"train": n_train, "val": n_val, "test": n_test, "test_natural": n_test, "test_balanced": n_test}

    # ------------------------------------------------------------ rows
    def question(self, counts: Sequence[int]) -> str:
        return f"Hand: {format_tiles(to_kinds(counts), self.notation)}\nWinning tiles?"

    def write_rationale(self, counts: Sequence[int], waits: Sequence[Wait]) -> str:
        """The rationale in `rationale_format` for a hand and its solved waits."""
        if self.rationale_format == "proof":
            return format_rationale(waits, self.notation)
        return format_search(counts, waits, self.variant, self.notation, open_only=self.rationale_format == "suits")

    def verify(self, counts: Sequence[int], text: str) -> list[int]:
        """The winning tiles `text` proves for the hand, in `rationale_format` (RationaleError if it does not)."""
        if self.rationale_format == "proof":
            return verify_rationale(counts, text, self.variant)
        return verify_search(counts, text, self.variant, open_only=self.rationale_format == "suits")

    def make_row(self, counts: Sequence[int], waits: Sequence[Wait], expect: Sequence[int] | None = None) -> dict:
        """A row whose rationale passed `verify` and proves exactly `expect` (when given:
        the tiles the sampler or the engine found). A mismatch is a bug, hence RuntimeError."""
        rationale = self.write_rationale(counts, waits)
        tiles = [w.tile for w in waits]
        hand = format_compact(to_kinds(counts))
        if self.verify(counts, rationale) != tiles or (expect is not None and list(expect) != tiles):
            raise RuntimeError(f"rationale does not prove the expected answer for {hand}")
        return {
            "id": hashlib.sha1(f"mahjong|{self.variant}|{hand}".encode()).hexdigest()[:16],
            "question": self.question(counts),
            "answer": answer_text(tiles, self.notation),
            "rationale": rationale,
            "difficulty": f"waits={len(tiles)}",
            "hand": hand,
            "winning_tiles": [NAMES[k] for k in tiles],
            "n_waits": len(tiles),
            "variant": self.variant,
        }

    def build_splits(self) -> dict[str, list[dict]]:
        if self.source:
            return self._splits_from_source()
        gen = Generator(self.variant)
        seen: set[bytes] = set()
        out = {}
        for split in SPLITS:
            # the natural test split keeps the RNG stream it had as the only test split ("<seed>:test")
            rng = random.Random(f"{self.seed}:{'test' if split == 'test_natural' else split}")
            if split == "test_balanced":
                exs = synthesize_balanced(gen, self.sizes[split], rng, seen, split)
            elif split == "train" and self.curriculum:
                out[split] = self._staged_train(gen, seen)
                continue
            else:
                exs = synthesize_split(gen, self.sizes[split], rng, self.nontenpai_rate, self.wait_distribution,
                                       seen, split)
            out[split] = [self.make_row(e.counts, solve(e.counts, self.variant), e.tiles) for e in exs]
        other = "natural" if self.test_distribution == "balanced" else "balanced"
        return {"train": out["train"], "val": out["val"], "test": out[f"test_{self.test_distribution}"],
                f"test_{other}": out[f"test_{other}"]}

    def _staged_train(self, gen: Generator, seen: set[bytes]) -> list[dict]:
        """The training rows of `task.curriculum`, stage by stage (each its own rows, mix and RNG stream), tagged
        with `curriculum_stage` (the distill stage trains them in that order: stratos/distill/curriculum.py)."""
        rows = []
        for i, (n, mix) in enumerate(self.curriculum):
            rng = random.Random(f"{self.seed}:train:stage{i}")
            exs = synthesize_split(gen, n, rng, self.nontenpai_rate, mix, seen, f"train (curriculum stage {i})")
            rows += [{**self.make_row(e.counts, solve(e.counts, self.variant), e.tiles), "curriculum_stage": i}
                     for e in exs]
        return rows

    def _splits_from_source(self) -> dict[str, list[dict]]:
        """Read, engine-check, dedupe, shuffle by seed, then fill test, val, train (in that order)."""
        rows = read_benchmark(self.source, self.variant)
        exs, seen, extra = [], set(), {}
        for r in rows:
            key = bytes(r["counts"])
            if key in seen:
                continue  # a repeated hand may not land in two splits
            seen.add(key)
            extra[key] = r.get("extra") or {}  # the file's other fields (e.g. teacher_id), kept on the row
            exs.append(Example(r["counts"], r["winning_tiles"]))
        if len(exs) < 3:
            raise UserError(f"invalid value for 'task.source': {self.source!r} (needs >= 3 distinct hands, "
                            f"has {len(exs)})")
        random.Random(f"{self.seed}:source").shuffle(exs)
        out, i = {}, 0
        for split, reserve in (("test", 2), ("val", 1), ("train", 0)):
            k = min(self.sizes[split], len(exs) - i - reserve)
            out[split] = [self._with_extra(self.make_row(e.counts, solve(e.counts, self.variant), e.tiles),
                                           extra[bytes(e.counts)]) for e in exs[i:i + k]]
            i += k
        return {s: out[s] for s in ("train", "val", "test")}

    @staticmethod
    def _with_extra(row: dict, extra: dict) -> dict:
        """The row plus a source file's own fields that the row does not define (e.g. teacher_id)."""
        return {**row, **{k: v for k, v in extra.items() if k not in row}}

    # ------------------------------------------------------------ Task protocol
    def rationale(self, row: dict) -> str:
        """Re-solved from the hand and verified (so a stale or edited row cannot teach a wrong proof)."""
        counts = parse_hand(row["hand"])
        text = self.write_rationale(counts, solve(counts, self.variant))
        self.verify(counts, text)
        return text

    def answer_line(self, row: dict) -> str:
        return f"{ANSWER_PREFIX} {row['answer']}"

    def extract(self, text: str) -> list[str] | None:
        """Winning tiles named by the text's final answer (compact names, ascending; [] = none)."""
        got = extract_tiles(text)
        return None if got is None else [NAMES[k] for k in sorted(got)]

    def is_correct(self, row: dict, text: str) -> bool:
        got = extract_tiles(text)
        return got is not None and got == frozenset(parse_tile(w) for w in row["winning_tiles"])

    def slice_of(self, row: dict) -> str:
        """The row's slice for multi-teacher routing (stratos/distill/routing.py): its number of winning tiles."""
        return str(int(row["n_waits"]))

    def features(self, row: dict) -> dict[str, float]:
        counts = parse_hand(row["hand"])
        n = int(row["n_waits"])
        return {
            "n_waits": float(n),
            "tenpai": float(n > 0),
            "n_suits": float(sum(1 for s in range(3) if any(counts[9 * s:9 * s + 9]))),
            "n_honors": float(sum(counts[27:])),
            "n_pairs": float(sum(1 for x in counts if x >= 2)),
            "rationale_lines": float((row.get("rationale") or self.rationale(row)).count("\n") + 1),
            "rationale_chars": float(len(row.get("rationale") or self.rationale(row))),
        }

    def corpus(self) -> str:
        return rules_text(self.variant)

    # ------------------------------------------------------------ line judge (verifier teacher, on-policy KD)
    def judge(self, row: dict, text: str) -> Judgement:
        """Judge `text` line by line against the engine's rationale for the row, in `rationale_format`.

        Line i is right when it settles the i-th step the engine's rationale settles: the same tile (and, for a
        winning tile, groups that are hand + tile in a winning shape, any grouping; for a losing candidate `no`),
        the same `Open:` line, an answer line naming the same tiles. `corrected` keeps the text's right leading
        lines and continues with the engine's lines from the first wrong one, so it passes `verify`.
        """
        counts = parse_hand(row["hand"])
        ref = self.rationale(row).split("\n")
        lines = text.split("\n") if text.strip() else []
        k = 0
        while k < min(len(lines), len(ref)) and self._line_right(counts, ref[k], lines[k]):
            k += 1
        wrong = k < len(lines)  # a wrong line, or anything after the answer line
        return Judgement(k, k + int(wrong), "\n".join(lines[:k] + ref[k:]), k == len(ref) and not wrong)

    def _line_right(self, counts: Sequence[int], ref: str, line: str) -> bool:
        try:
            if ref.startswith(ANSWER_PREFIX):
                # the verifier's reading and the grader's must both agree ("Answer: " reads as none to the first)
                return (line.startswith(ANSWER_PREFIX) and read_answer_line(line)[1] == read_answer_line(ref)[1]
                        and extract_tiles(line) == extract_tiles(ref))
            if ref.startswith(OPEN):
                return line == ref
            tile = parse_tile(ref.partition(":")[0])
            head, sep, rest = line.partition(":")
            if not sep or parse_tile(head) != tile:
                return False
            if ref.partition(":")[2].strip() == NO:
                return rest.strip() == NO
            return verify_line(counts, line, self.variant) == tile
        except (RationaleError, TileError):
            return False

    def __repr__(self) -> str:  # shows up in logs
        return (f"MahjongTask(variant={self.variant}, notation={self.notation}, n={self.n_train}/{self.n_val}/"
                f"{self.n_test}, seed={self.seed}, test={self.test_distribution}, source={self.source!r})")

