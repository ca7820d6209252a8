"""An empty feasible set becomes one line: the binding constraint and the closest plans."""

from __future__ import annotations

import re

import pytest

from stratos.errors import UserError
from stratos.plan.planner import plan


def small(cfg_factory, **kw):
    return cfg_factory(task="gsm8k", planner__teachers=["qwen2p5_7b", "qwen2p5_72b"],
                       planner__students=["qwen2p5_0p5b", "qwen2p5_3b"], servers__include_local=False, **kw)


def test_budget_too_small_names_budget_and_the_needed_value(cfg_factory):
    cfg = small(cfg_factory, constraints__budget_usd=0.001)
    with pytest.raises(UserError) as e:
        plan(cfg)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("no plan meets the constraints; binding: constraints.budget_usd=0.001")
    need = float(re.search(r"constraints.budget_usd>=([0-9.e+-]+)", msg).group(1))
    assert need > 0.001
    assert msg.count("->") == 3  # three closest plans, each with its violations
    # relaxing the budget to the reported value admits a plan
    cfg.constraints.budget_usd = need * 1.001
    assert plan(cfg).json["selected"]["estimates"]["cost_usd"] <= need * 1.001


def test_accuracy_floor_and_deadline(cfg_factory):
    cfg = small(cfg_factory, constraints__min_accuracy=0.99)
    with pytest.raises(UserError, match=r"binding: constraints.min_accuracy=0.99 ") as e:
        plan(cfg)
    best = float(re.search(r"constraints.min_accuracy<=([0-9.]+)", str(e.value)).group(1))
    cfg.constraints.min_accuracy = best - 1e-4  # the reported best accuracy is reachable, and nothing above it
    assert plan(cfg).json["baselines"]["accuracy_first"]["estimates"]["accuracy"] == pytest.approx(best, abs=1e-4)
    with pytest.raises(UserError, match=r"binding: constraints.deadline_h=1e-05"):
        plan(small(cfg_factory, constraints__deadline_h=1e-5))


def test_memory_and_pairing_failures(cfg_factory):
    cfg = cfg_factory(task="gsm8k", servers="local", planner__teachers=["qwen2p5_72b"],
                      planner__students=["qwen2p5_3b"], planner__strategies=["alignment"])
    with pytest.raises(UserError, match=r"no plan fits in memory: the smallest need is [0-9.]+ GB per device"):
        plan(cfg)
    cfg = cfg_factory(task="gsm8k", planner__teachers=["tiny_teacher"], planner__students=["qwen2p5_0p5b"])
    with pytest.raises(UserError, match="every teacher-student pair fails preflight"):
        plan(cfg)
