"""stratos_command: the argv a Slurm job or cloud VM runs; Hydra must read the run dir and stages back intact."""

from __future__ import annotations

import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from stratos.launch.command import hydra_value, stratos_command

PARSER = OverridesParser.create()


def value_of(arg: str):
    return PARSER.parse_override(arg).value()


def test_shape_and_passthrough():
    cmd = stratos_command(["+task=mahjong", "student=qwen2_0p5b"], "/runs/a", ["distill", "evaluate"])
    assert cmd[:3] == [sys.executable, "-m", "stratos"]
    assert cmd[3:5] == ["+task=mahjong", "student=qwen2_0p5b"]
    assert cmd[5:] == ["planner.execute=false", "hydra.run.dir='/runs/a'", "pipeline.stages=[distill,evaluate]",
                       "pipeline.resume=true"]


@pytest.mark.parametrize("run_dir", ["/data/my runs/x", "/a,b/c=d", "it's", "C:\\runs\\x", "s3://bucket/runs/a b",
                                     "/runs/[1]", "/runs/{x: 1}"])
def test_run_dir_survives_hydra(run_dir):
    arg = stratos_command([], run_dir, ["plan"])[-3]
    assert arg.startswith("hydra.run.dir=")
    assert value_of(arg) == run_dir


def test_stage_names_stay_strings():
    arg = stratos_command([], "/r", ["data", "true", "null", "my stage"])[-2]
    assert value_of(arg) == ["data", "true", "null", "my stage"]
    assert hydra_value("data") == "data" and hydra_value("true") == "'true'"


def test_whole_line_parses_as_overrides():
    cmd = stratos_command(["+task=mahjong"], "/tmp/a b", ["plan", "data"])
    parsed = PARSER.parse_overrides(cmd[3:])
    assert {o.key_or_group: o.value() for o in parsed} == {
        "task": "mahjong", "planner.execute": False, "hydra.run.dir": "/tmp/a b",
        "pipeline.stages": ["plan", "data"], "pipeline.resume": True}
