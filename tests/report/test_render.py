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
    for needle in ("# Stratos report — mahjong", "## Strategy", "logit KD refused", "| waits=1 | 0.75 |",
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
