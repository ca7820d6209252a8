"""Smoke test of `python -m benchmarks.mahjong_synthesis` (tiny sizes; the figures are in the report)."""

import os

from benchmarks.mahjong_synthesis import main


def test_benchmark_runs_and_fast_path_wins():
    before = os.sched_getaffinity(0)
    try:
        res = main(["--n", "60", "--variants", "basic"])
    finally:
        os.sched_setaffinity(0, before)  # the benchmark pins itself to core 0; give the test run its cores back
    assert set(res) == {("basic", "conf"), ("basic", "natural")}
    for r in res.values():
        assert r["cross_checked"] > 60  # every engine row + the fast rows were re-answered by the other side
        assert r["fast_cpu"] > r["engine_cpu"]
