"""Evolutionary search when the candidate space is too large to enumerate.

Extra decision variables (LoRA rank, serving precision, micro-batch, GPUs per node) multiply
servers x teachers x students x strategies; beyond `planner.enumerate_limit` candidates the
planner runs pymoo's NSGA-II (or NSGA-III with Das-Dennis reference directions) over the
integer variables, with the objectives and constraints of `stratos.plan.problem.evaluate` -
the same function exact enumeration uses. Integer handling follows pymoo's mixed-variable
recipe: integer random sampling, SBX and polynomial mutation with `vtype=int` and rounding repair.

The result is the non-dominated set of every feasible candidate the search evaluated (an
archive, not only the last population), so it is a subset-approximation of the true front; with
one value per knob the planner enumerates instead and the front is exact.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.problem import Problem

from stratos.plan.problem import VARS, Space, evaluate


class PlanProblem(Problem):
    """pymoo view of a `Space`: X (N, 8) integer indices -> F (N, 4), G (N, 8)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        shape = np.array(space.shape)
        super().__init__(n_var=len(VARS), n_obj=4, n_ieq_constr=8, xl=np.zeros(len(VARS)), xu=shape - 1.0,
                         vtype=int)
        self.seen: list[np.ndarray] = []  # every evaluated (feasible) X, for the archive

    def _evaluate(self, X, out, *args, **kwargs):
        Xi = np.clip(np.rint(X).astype(np.int64), 0, np.array(self.space.shape) - 1)
        ev = evaluate(self.space, {v: Xi[:, i] for i, v in enumerate(VARS)})
        out["F"], out["G"] = ev.F, ev.G
        self.seen.append(Xi[ev.feasible])


def nsga(space: Space, algorithm: str = "nsga2", pop_size: int = 200, generations: int = 150,
         seed: int = 0) -> dict[str, np.ndarray]:
    """Run NSGA-II / NSGA-III; returns the distinct feasible candidates it evaluated, as index arrays."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize
    from pymoo.util.ref_dirs import get_reference_directions

    ops = dict(sampling=IntegerRandomSampling(), crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
               mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    if algorithm == "nsga3":
        ref = get_reference_directions("das-dennis", 4, n_partitions=6)  # 84 directions in 4-D
        algo = NSGA3(ref_dirs=ref, pop_size=max(pop_size, len(ref)), **ops)
    else:
        algo = NSGA2(pop_size=pop_size, **ops)
    problem = PlanProblem(space)
    minimize(problem, algo, ("n_gen", generations), seed=seed, verbose=False)
    seen = np.unique(np.concatenate(problem.seen, axis=0), axis=0) if problem.seen else np.zeros((0, len(VARS)), int)
    return {v: seen[:, i] for i, v in enumerate(VARS)}

