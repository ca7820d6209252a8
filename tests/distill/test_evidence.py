"""The evidence table: means over seeds, paired differences, unfinished runs listed not averaged."""

from __future__ import annotations

import json

import pytest

from stratos.distill import evidence


def write_run(root, cond, seed, acc, finished=True, bpt=None):
    run = root / cond / f"seed{seed}"
    for stage, metrics in (("distill", {"distill/steps": 600, "distill/seconds": 100.0, "distill/tokens_per_s": 5000.0,
                                        **({"distill/topk/bytes_per_token": bpt} if bpt else {})}),
                           ("evaluate", {"evaluate/test/accuracy": acc})):
        (run / stage).mkdir(parents=True)
        if finished or stage == "distill":
            (run / stage / "manifest.json").write_text(json.dumps({"stage": stage, "config_hash": "h",
                                                                    "metrics": metrics}))


def test_table_means_paired_deltas_and_unfinished(tmp_path, capsys):
    for seed, (a, b) in enumerate([(0.30, 0.40), (0.32, 0.38), (0.28, 0.45)]):
        write_run(tmp_path, "a_labels_only", seed, a)
        write_run(tmp_path, "b_live_kd", seed, b)
    write_run(tmp_path, "c_store_kd", 0, 0.41, bpt=130.1)
    write_run(tmp_path, "c_store_kd", 1, 0.99, finished=False)  # no evaluate manifest: not averaged
    res = evidence.collect(str(tmp_path))
    assert sorted(res["c_store_kd"]) == [0]
    out = evidence.table(res, "a_labels_only", teacher_acc=0.862)
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert "30.0 ± 2.0 %" in rows["a_labels_only"]
    assert "41.0 ± 3.6 %" in rows["b_live_kd"] and "+11.0 ± 5.6 pts (n=3)" in rows["b_live_kd"]
    assert "| 1 | 41.0 ± 0.0 %" in rows["c_store_kd"] and "| 130 |" in rows["c_store_kd"]
    assert "Teacher: 86.2 %" in out
    evidence.main([str(tmp_path)])
    assert "b_live_kd" in capsys.readouterr().out


def test_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="is not a directory"):
        evidence.main([str(tmp_path / "nope")])
