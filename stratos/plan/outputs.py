"""The plan stage's artifact contract: the names of the files it writes (readers use these names)."""

PLAN_JSON = "plan.json"  # selected plan with estimates, front, baselines, excluded pairs, constraints, run estimate
PARETO_PNG = "pareto.png"  # the front, the choice and the baselines
