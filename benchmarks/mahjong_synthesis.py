"""Throughput of Mahjong example synthesis: fast exact path vs the engine-only baseline.

    python -m benchmarks.mahjong_synthesis [--n 1000] [--variants basic,riichi]

Both paths run the *same* pipeline on one pinned core — reverse synthesis, resampling to a wait
distribution, decomposition, rationale formatting and rationale verification — and differ only in
who answers: our memoised per-suit tables (`waits.winning_tiles` / `waits.solve`, caches cleared
first, so the figure includes warming them) or the `mahjong` engine (`Shanten` per candidate kind,
`HandDivider` for the groups). Rates are verified examples per CPU-second (`process_time`, robust to
other processes sharing the machine) and per wall-second. Outside the timed region, every
engine row is re-answered by the fast path and the first fast rows by the engine; they must agree.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from stratos.tasks.mahjong.reference import engine_solve, engine_winning_tiles
from stratos.tasks.mahjong.synthesis import Generator, synthesize_split
from stratos.tasks.mahjong.task import MahjongTask
from stratos.tasks.mahjong.tiles import NAMES, parse_hand
from stratos.tasks.mahjong.waits import clear_caches, solve, winning_tiles

# conf/task/mahjong.yaml's default shares, and the generator's natural draw
DISTRIBUTIONS = {
    "conf": {"1": 0.25, "2": 0.30, "3": 0.20, "4": 0.12, "5": 0.08, "6": 0.04, "7": 0.01},
    "natural": {},
}


CHECK_N = 300  # fast rows re-answered by the engine (at ~1.2 ms each)


def agree(rows: list[dict], variant: str, engine: bool) -> int:
    """Re-answer rows with the other solver; raise if any answer differs. Returns rows checked."""
    fn = engine_winning_tiles if engine else winning_tiles
    for r in rows:
        c = parse_hand(r["hand"])
        if [NAMES[k] for k in fn(c, variant)] != r["winning_tiles"]:
            raise AssertionError(f"fast path and engine disagree on {r['hand']} ({variant})")
    return len(rows)


def synthesize(variant: str, dist: dict, n: int, engine: bool, seed: int = 0) -> tuple[list[dict], float, float]:
    """n verified rows; returns (rows, cpu seconds, wall seconds)."""
    task = MahjongTask(n_train=n, n_val=1, n_test=1, variant=variant, wait_distribution=dist, seed=seed)
    if engine:
        gen = Generator(variant, engine_winning_tiles)
        answer = lambda c, tiles: engine_solve(c, variant, tiles)  # noqa: E731
    else:
        clear_caches()
        gen = Generator(variant, winning_tiles)
        answer = lambda c, tiles: solve(c, variant)  # noqa: E731
    c0, w0 = time.process_time(), time.perf_counter()
    exs = synthesize_split(gen, n, random.Random(f"{seed}:bench"), task.nontenpai_rate, dist, set(), "bench")
    rows = [task.make_row(e.counts, answer(e.counts, e.tiles), e.tiles) for e in exs]
    return rows, time.process_time() - c0, time.perf_counter() - w0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="rows per run (same for both paths: the quotas, "
                    "hence the rejection work, depend on n)")
    ap.add_argument("--variants", default="basic,riichi")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core: the requirement is per core
    print(f"pinned to cores {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    print(f"{'variant':8} {'dist':8} {'fast/cpu-s':>11} {'engine/cpu-s':>13} {'ratio':>7} "
          f"{'fast/wall-s':>12} {'engine/wall-s':>14} {'ratio':>7}")
    results = {}
    for variant in args.variants.split(","):
        for dname, dist in DISTRIBUTIONS.items():
            fast_rows, fc, fw = synthesize(variant, dist, args.n, engine=False)
            eng_rows, ec, ew = synthesize(variant, dist, args.n, engine=True)
            # outside the timed region: each side's answers checked by the other solver
            checked = agree(eng_rows, variant, engine=False) + agree(fast_rows[:CHECK_N], variant, engine=True)
            f_cpu, e_cpu = len(fast_rows) / fc, len(eng_rows) / ec
            f_wall, e_wall = len(fast_rows) / fw, len(eng_rows) / ew
            results[(variant, dname)] = {"fast_cpu": f_cpu, "engine_cpu": e_cpu, "fast_wall": f_wall,
                                         "engine_wall": e_wall, "cross_checked": checked}
            print(f"{variant:8} {dname:8} {f_cpu:11.0f} {e_cpu:13.0f} {f_cpu / e_cpu:6.1f}x "
                  f"{f_wall:12.0f} {e_wall:14.0f} {f_wall / e_wall:6.1f}x   (cross-checked {checked} rows)")
    worst = min(r["fast_cpu"] for r in results.values())
    print(f"slowest fast path: {worst:.0f} verified examples per CPU-second on one core (target >= 2000)")
    return results


if __name__ == "__main__":
    main()
