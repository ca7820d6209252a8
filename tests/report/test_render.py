from __future__ import annotations

from stratos.report.render import console_table, markdown

REPORT = {
    "task": "mahjong",
    "plan": {"selected": {"server": "aws/p5", "teacher": "t", "student": "s", "strategy": "alignment"},
             "candidates": 10, "pareto": 3, "baselines": {"cost_first": {"score": 0.4}},
             "improvement": {"cost_first": 12.5}, "executed": {"teacher": "t", "student": "s", "server": "local"}},
    "strategy": {"name": "alignment", "mode": "sequence", "reason": "probe 1.0 >= 0.6", "teacher_probe_accuracy": 1.0,
                 "kept": 9, "rejected": 1, "refused": ["logit KD refused: different vocabularies"]},
    "metrics": {"student": {"accuracy": 0.5, "n": 20, "by_difficulty": {"waits=1": 0.75}},
                "teacher": {"accuracy": 1.0, "n": 5}, "distill": {"steps": 100}},
    "export": {"onnx_max_abs_diff": 2e-6}, "deploy": {"ort_tokens_per_s": 700.0},
    "timings": {"plan": 1.0, "distill": 30.0},
    "ledger": [{"quantity": "accuracy", "estimated": 0.3, "actual": 0.5, "ratio": 1.67}],
}


def test_markdown_has_every_section():
    md = markdown(REPORT, "plan/pareto.png")
    for needle in ("# Stratos report — mahjong", "## Strategy", "logit KD refused", "| waits=1 | — | 0.75 |",
                   "| cost_first | 0.4 | 12.5 |", "![Pareto front](plan/pareto.png)", "## Ledger", "| accuracy | 0.3 | 0.5 |",
                   "ort_tokens_per_s"):
        assert needle in md, needle


def test_console_table_shows_selected_and_executed():
    t = console_table(REPORT)
    assert "server=aws/p5" in t and "student=s" in t and "0.5 on 20 items" in t and "2e-06" in t


def test_the_loss_curve_from_the_csv_logger_is_rendered_when_there_is_one():
    from stratos.report.stage import CURVE_POINTS, curve_summary

    rows = [{"step": s, "train/loss": 5.0 - s / 100, **({"val/loss": 4.9} if s % 50 == 0 else {})}
            for s in range(1, 201)]
    curve = curve_summary(rows)
    assert len(curve["points"]) == CURVE_POINTS and curve["points"][0]["step"] == 1
    assert (curve["last_step"], curve["first_loss"], curve["last_loss"]) == (200, 4.99, 3.0)
    md = markdown({**REPORT, "curve": curve}, None)
    assert "## Loss curve (200 logged steps" in md and "| step | train/loss | val/loss |" in md
    assert "| 200 | 3 | 4.9 |" in md
    assert "4.99 -> 3 at step 200" in console_table({**REPORT, "curve": curve})
    assert "Loss curve" not in markdown(REPORT, None) and curve_summary([]) is None


def test_both_test_splits_show_accuracy_and_items_per_wait_count():
    splits = {"test": {"accuracy": 0.3, "n": 20, "distribution": "balanced",
                       "by_difficulty": {"waits=0": 0.5, "waits=2": 0.25, "waits=13": 0.0},
                       "n_by_difficulty": {"waits=0": 10, "waits=2": 8, "waits=13": 2}},
              "test_natural": {"accuracy": 0.6, "n": 10, "distribution": "natural",
                               "by_difficulty": {"waits=2": 0.6}, "n_by_difficulty": {"waits=2": 10}}}
    r = {**REPORT, "metrics": {**REPORT["metrics"], "test_splits": splits}}
    md = markdown(r, None)
    assert "| bucket | test, balanced: n | accuracy | test_natural: n | accuracy |" in md
    rows = [line for line in md.splitlines() if line.startswith("| waits=")]
    assert rows == ["| waits=0 | 10 | 0.5 | 0 | — |", "| waits=2 | 8 | 0.25 | 10 | 0.6 |", "| waits=13 | 2 | 0 | 0 | — |"]
    t = " ".join(console_table(r).split())
    assert "student accuracy (test, balanced) | 0.3 on 20 items" in t and "student accuracy (test_natural) | 0.6 on 10" in t


def test_the_report_gathers_every_scored_test_split_headline_first():
    from stratos.report.stage import held_out_splits

    ev = {"evaluate/test_natural/accuracy": 0.6, "evaluate/test_natural/n": 10, "evaluate/test/accuracy": 0.3,
          "evaluate/test/n": 20, "evaluate/test/n_by_difficulty": {"waits=0": 20}, "evaluate/teacher/accuracy": 1.0}
    got = held_out_splits(ev, {"test": "balanced", "test_natural": "natural"})
    assert list(got) == ["test", "test_natural"] and got["test"]["distribution"] == "balanced"
    assert got["test"]["n_by_difficulty"] == {"waits=0": 20} and got["test_natural"]["by_difficulty"] is None
    assert list(held_out_splits({"evaluate/test/accuracy": 0.5}, None)) == ["test"]  # tasks with one test split


def test_several_teachers_show_the_route_the_shares_and_the_probe_table():
    routing = {"by": "auto", "reason": "route.by=auto: each slice to its best teacher", "assignment": {"0": "a", "5": "b"},
               "table": {"0": {"a": {"accuracy": 0.9, "n": 4}, "b": {"accuracy": 0.2, "n": 4}},
                         "5": {"a": {"accuracy": 0.1, "n": 4}, "b": {"accuracy": 0.6, "n": 4}}},
               "rows": {"a": 30, "b": 10}, "token_shares": {"a": 0.7, "b": 0.3}}
    r = {**REPORT, "strategy": {**REPORT["strategy"], "routing": routing}}
    md = markdown(r, None)
    for needle in ("## Teachers", "| a | 30 | 0.7 |", "| b | 10 | 0.3 |", "| slice | a probe accuracy | b probe accuracy |",
                   "| 0 (n=4) | **0.9** | 0.2 |", "| 5 (n=4) | 0.1 | **0.6** |"):
        assert needle in md, needle
    assert "a 0.7, b 0.3" in console_table(r)
    assert "## Teachers" not in markdown(REPORT, None)


def test_a_priced_route_shows_the_teacher_work_against_the_budget_and_per_slice():
    routing = {"by": "auto", "reason": "route.by=auto: within route.budget_usd=$11", "assignment": {"0": "b", "5": "a"},
               "table": {"0": {"a": {"accuracy": 0.9, "n": 4}, "b": {"accuracy": 0.85, "n": 4}},
                         "5": {"a": {"accuracy": 0.9, "n": 4}, "b": {"accuracy": 0.3, "n": 4}}},
               "rows": {"a": 10, "b": 10}, "token_shares": {"a": 0.5, "b": 0.5},
               "cost": {"budget_usd": 11.0, "usd": 11.0, "unconstrained_usd": 20.0, "cheapest_usd": 2.0,
                        "per_slice": {"0": {"usd": 1.0}, "5": {"usd": 10.0}},
                        "server": {"name": "local", "price_hour": 0.1, "flops_per_s": 6.72e10, "source": "this machine"}}}
    md = markdown({**REPORT, "strategy": {**REPORT["strategy"], "routing": routing}}, None)
    for needle in ("- teacher work: $11 of route.budget_usd $11 (unconstrained best $20, cheapest $2); priced "
                   "on local at $0.1/h, 0.0672 TFLOP/s (this machine)",
                   "| slice | a probe accuracy | b probe accuracy | routed teacher USD |", "| 0 (n=4) | 0.9 | **0.85** | 1 |"):
        assert needle in md, needle


def test_on_policy_kd_gets_its_line_in_the_strategy_section():
    off = markdown(REPORT, None)
    assert "on-policy KD" not in off
    st = {**REPORT["strategy"], "on_policy": {"rate": 0.5, "scorer": "verifier", "sampled_tokens": 1200,
                                              "tokens_per_s": 850.5, "lines_ok_share": 0.25}}
    md = markdown({**REPORT, "strategy": st}, None)
    assert ("- on-policy KD: lambda 0.5, scored by verifier; 1200 tokens sampled at 850.5 tokens/s, 0.25 of the "
            "judged lines right") in md
