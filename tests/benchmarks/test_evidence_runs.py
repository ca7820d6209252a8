"""benchmarks/evidence_runs.py: the run layout and resume rule the evidence benchmarks share."""

from __future__ import annotations

import argparse
import os

from benchmarks import evidence_runs as E


def test_run_grid_lays_out_runs_and_reuses_finished_ones(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(E, "cli", lambda overrides, run_dir: ran.append((overrides, run_dir)))
    done = tmp_path / "runs" / "b" / "seed1" / "evaluate"
    done.mkdir(parents=True)
    (done / "manifest.json").write_text("{}")
    res = E.run_grid(str(tmp_path), [0, 1], ["a", "b"], lambda c, s: [f"c={c}", f"seed={s}"],
                     lambda d: {"dir": os.path.relpath(d, tmp_path)}, lambda c, s, r: f"{c} {s} {r['dir']}")
    assert ran == [(["c=a", "seed=0"], str(tmp_path / "runs/a/seed0")), (["c=b", "seed=0"], str(tmp_path / "runs/b/seed0")),
                   (["c=a", "seed=1"], str(tmp_path / "runs/a/seed1"))]  # b/seed1 is finished: read, not run
    assert res == {"a": {0: {"dir": "runs/a/seed0"}, 1: {"dir": "runs/a/seed1"}},
                   "b": {0: {"dir": "runs/b/seed0"}, 1: {"dir": "runs/b/seed1"}}}
    assert capsys.readouterr().out.splitlines() == ["a 0 runs/a/seed0", "b 0 runs/b/seed0", "a 1 runs/a/seed1",
                                                    "b 1 runs/b/seed1"]


def test_common_overrides_name_the_task_and_sizes():
    a = argparse.Namespace(n_train=64, n_val=8, n_test=9, threads=1, out="/o")
    assert E.common(a, 10, 4)[:3] == ["+task=mahjong", "task.curriculum=[]", "task.n_train=64"]  # one mix, as measured
    assert E.common(a, 10, 4, task="gsm8k")[0] == "+task=gsm8k" and "trainer.val_every_n_steps=10" in E.common(a, 10, 4)
    assert E.mean_std([1.0, 3.0], 1, True) == "+2.0 ± 1.4" and E.mean_std([2.0], 2) == "2.00 ± 0.00"
