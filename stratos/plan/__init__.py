"""Planner: choose server, teacher, student and strategy before training (see stratos/plan/planner.py).

The report stage records what a run measured with `record_actuals(history_url, plan_json, measured)`.
"""

from stratos.plan.calibration import ledger, record_actuals

__all__ = ["ledger", "record_actuals"]
