"""The deadline turns into training tokens; the offline students trade size for tokens under it."""

from __future__ import annotations

import pytest

from stratos.plan.estimators import data_sufficiency
from stratos.plan.planner import build_space, plan
from stratos.plan.problem import evaluate


def _local(cfg_factory, **kw):
    kw = {"constraints__deadline_h": 0.1, "planner__train_to_deadline": True, **kw}
    return cfg_factory(servers="local", planner__teachers=["task_engine"],
                       planner__students=["tiny_llama", "mini_llama", "small_llama"], planner__history=None, **kw)


def test_three_offline_students_of_clearly_different_sizes(cfg_factory):
    sp = build_space(_local(cfg_factory))
    sizes = {m.name: m.params for m in sp.zoo.students}
    assert 0.5e6 < sizes["tiny_llama"] < 2e6 < sizes["mini_llama"] < 8e6 < sizes["small_llama"] < 30e6
    assert all(m.from_config for m in sp.zoo.students)


def test_every_candidate_trains_what_fits_before_the_deadline(cfg_factory):
    sp = build_space(_local(cfg_factory))
    X = sp.enumerate_all()
    ev = evaluate(sp, X)
    hours, tokens = ev.est["train_hours"], ev.est["train_tokens"]
    assert (hours <= 0.1 + 1e-9).all() and ev.feasible.any()
    # the bigger student trains fewer tokens in the same time
    by = {sp.zoo.students[u].name: tokens[X["student"] == u].max() for u in range(len(sp.zoo.students))}
    assert by["tiny_llama"] > by["mini_llama"] > by["small_llama"] > 0
    # and pays for it in predicted accuracy: sufficiency grows with tokens and falls with size
    assert data_sufficiency(1e7, 1e6, True) > data_sufficiency(1e6, 1e6, True) > data_sufficiency(1e6, 15e6, True)
    assert data_sufficiency(1e6, 15e6, False) == pytest.approx(0.5)  # pretrained: a fixed 1e6-token half point


def test_a_fixed_budget_and_a_tight_deadline_is_infeasible_not_shortened(cfg_factory):
    j = plan(_local(cfg_factory, planner__train_tokens=1e5)).json
    assert j["selected"]["estimates"]["train_tokens"] == pytest.approx(1e5)  # fits: trains all of it
    cfg = _local(cfg_factory, planner__train_to_deadline=False, planner__train_tokens=1e9)
    from stratos.errors import UserError

    with pytest.raises(UserError, match="deadline"):
        plan(cfg)


def test_train_shares_make_time_and_cost_a_choice(cfg_factory):
    cfg = _local(cfg_factory, planner__train_shares=[0.25, 0.5, 1.0], servers__local_price_hour=0.1)
    j = plan(cfg).json
    cost_first = j["baselines"]["cost_first"]
    acc_first = j["baselines"]["accuracy_first"]
    assert cost_first["train_share"] == 0.25 and acc_first["train_share"] == 1.0
    assert cost_first["estimates"]["cost_usd"] == pytest.approx(acc_first["estimates"]["cost_usd"] / 4)
    assert cost_first["estimates"]["accuracy"] < acc_first["estimates"]["accuracy"]


def test_a_slurm_partition_is_a_server_with_its_price_and_start_up(cfg_factory):
    from stratos.plan.cost import cloud_from_cfg

    cfg = _local(cfg_factory, servers__slurm__partition="debug", servers__slurm__price_hour=0.04,
                 servers__slurm__startup_s=36.0)
    cloud = cloud_from_cfg(cfg.servers)
    i = cloud.servers.index("slurm/debug")
    assert i >= 0 and cloud.servers.launcher[i] == "slurm" and cloud.servers.partition[i] == "debug"
    assert cloud.price_hour[i] == 0.04 and cloud.servers.startup_s[i] == 36.0
    sp = build_space(cfg, check_runnable=False)
    X = sp.enumerate_all()
    ev = evaluate(sp, X)
    on = X["server"] == i
    assert ev.est["startup_hours"][on] == pytest.approx([0.01] * int(on.sum()))
    # start-up eats into the deadline: fewer tokens than on this machine, same hardware
    assert ev.est["train_tokens"][on].max() < ev.est["train_tokens"][~on].max()
