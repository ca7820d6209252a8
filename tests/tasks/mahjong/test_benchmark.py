"""Smoke test of `python -m benchmarks.mahjong_synthesis` (tiny sizes; the figures are in the report).

It checks that both paths run and agree, not which is faster: at 60 rows the fast path's timed
region is mostly warming its cleared caches, so the two rates sit within noise of each other and a
speed assertion here failed under CI's load (143 vs 193 rows per CPU-second). The speed claim is
the benchmark's, at its default 1,000 rows, printed as a ratio against the engine in the same run."""

import os

from benchmarks.mahjong_synthesis import main


def test_benchmark_runs_and_both_paths_agree(capsys):
    before = os.sched_getaffinity(0)
    try:
        res = main(["--n", "60", "--variants", "basic"])
    finally:
        os.sched_setaffinity(0, before)  # the benchmark pins itself to core 0; give the test run its cores back
    assert set(res) == {("basic", "conf"), ("basic", "natural")}
    for r in res.values():
        assert r["cross_checked"] > 60  # every engine row + the fast rows were re-answered by the other side
        assert all(r[k] > 0 for k in ("fast_cpu", "engine_cpu", "fast_wall", "engine_wall"))
    out = capsys.readouterr().out
    assert "basic    conf" in out and "basic    natural" in out and "slowest fast path:" in out
