"""Planner: choose server, teacher, student and strategy before training (see stratos/plan/planner.py).

After a run the pipeline records what it measured with `record_actuals(history_url, plan_json, measured)`
(stratos/plan/record.py: `record_run`).
"""

from stratos.plan.calibration import ledger, record_actuals

__all__ = ["ledger", "record_actuals"]
