"""Executing the plan: pins found, decisions applied as config-group overrides, origins recorded."""

from __future__ import annotations

from omegaconf import OmegaConf

from stratos.plan.calibration import Calibration
from stratos.plan.decisions import PINNED, PLAN, baseline_overrides, decisions, find_pins, overrides_of
from tests.conftest import compose_cfg


def test_pins_from_the_command_line():
    cfg = compose_cfg(["+task=mahjong"])
    assert find_pins(["+task=mahjong"], cfg, None) == []
    assert find_pins(["student=mini_llama"], cfg, None) == ["lora_rank", "student"]  # its peft comes with it
    assert set(find_pins(["student.peft.r=4"], cfg, None)) == {"student", "lora_rank"}
    assert set(find_pins(["trainer.max_steps=5"], cfg, None)) == {"trainer.max_steps", "trainer.max_minutes"}
    assert set(find_pins(["strategy=injection"], cfg, None)) == {"strategy", "mode"}
    assert find_pins(["servers.run_server=local"], cfg, None) == ["server"]
    assert "hardware" in find_pins(["trainer=gpu"], cfg, None)
    # a key that merely starts like a decision's does not pin it
    assert find_pins(["studentx=1"], cfg, None) == []


def test_pins_from_a_debug_file_compare_against_the_config_without_it():
    overrides = ["+task=mahjong", "debug=fast"]
    assert baseline_overrides(overrides) == ["+task=mahjong"]
    assert baseline_overrides(["+task=mahjong"]) is None
    pins = set(find_pins(overrides, compose_cfg(overrides), compose_cfg(["+task=mahjong"])))
    # debug=fast shrinks the student, and fixes steps and batch: all the user's choice now
    assert {"student", "trainer.max_steps", "trainer.batch_size", "trainer.max_minutes"} <= pins
    assert "teacher" not in pins and "server" not in pins
    assert "strategy" not in pins  # debug=fast lowers strategy.probe_n: the choice of strategy stays the plan's


def _selected(**kw):
    sel = {"server": "local", "gpu": "cpux1", "teacher": "task_engine", "student": "mini_llama",
           "strategy": "alignment", "mode": "sequence", "lora_rank": 0, "micro_batch": 64,
           "estimates": {"train_tokens": 64 * 42 * 100.0, "n_gpus": 1.0, "startup_hours": 0.0}}
    sel.update(kw)
    return {"selected": sel}


def test_decisions_apply_every_unpinned_choice():
    cfg = compose_cfg(["+task=mahjong", "planner.history=null"])
    ds = {d.name: d for d in decisions(cfg, _selected(), [], Calibration())}
    assert all(d.origin == PLAN for d in ds.values())
    assert ds["student"].value == "mini_llama"
    assert ds["trainer.max_steps"].value == 100  # tokens / (batch 64 x 42 tokens per example)
    assert ds["trainer.max_minutes"].value == 8.4  # constraints.deadline_h = 0.14
    ovs = overrides_of(list(ds.values()))
    assert "student=mini_llama" in ovs and "strategy=alignment" in ovs and "trainer.max_steps=100" in ovs
    assert "strategy.alignment.mode=sequence" in ovs and "servers.run_server=local" in ovs
    assert not any(o.startswith("trainer=") for o in ovs)  # already a CPU trainer: nothing to change
    # the overrides compose: the plan's choices are config-group options
    applied = compose_cfg(["+task=mahjong", *ovs])
    assert applied.student.name == "mini_llama" and applied.trainer.max_steps == 100


def test_pinned_decisions_keep_the_users_value():
    cfg = compose_cfg(["+task=mahjong", "student=small_llama", "trainer.max_steps=7"])
    ds = {d.name: d for d in decisions(cfg, _selected(student="small_llama"), ["student", "trainer.max_steps",
                                                                              "trainer.max_minutes"], Calibration())}
    assert ds["student"].origin == PINNED and ds["student"].value == "small_llama" and ds["student"].override is None
    assert ds["trainer.max_steps"].value == 7 and ds["trainer.max_steps"].origin == PINNED
    assert ds["teacher"].origin == PLAN


def test_gpu_server_decides_the_trainer_and_steps_use_measured_tokens_per_example():
    cfg = compose_cfg(["+task=mahjong", "planner.history=null"])
    sel = _selected(gpu="H100x4", server="aws/p5.48xlarge/us-east-1")
    sel["selected"]["estimates"]["n_gpus"] = 4.0
    cal = Calibration(example_tokens={"mahjong/mini_llama": [84.0]})
    ds = {d.name: d for d in decisions(cfg, sel, [], cal)}
    assert ds["hardware"].value == "gpu x4"
    assert ds["hardware"].override == "trainer=gpu trainer.devices=4"
    assert ds["trainer.max_steps"].value == 50  # 84 measured tokens per example (twice the prior) halve the steps
    applied = compose_cfg(["+task=mahjong", *overrides_of(list(ds.values()))])
    assert applied.trainer.accelerator == "gpu" and applied.trainer.devices == 4
    assert OmegaConf.select(applied, "servers.run_server") == "aws/p5.48xlarge/us-east-1"
