"""The plan's decisions: what the user pinned, what the plan decides, and the overrides that apply it.

    pins = find_pins(overrides, cfg, baseline)       # what the user fixed (command line, experiment files)
    ds = decisions(cfg, plan_json, pins, calibration)  # every decision, with its value and origin
    overrides = overrides_of(ds)                       # what applies the planned ones

The CLI (stratos/execute.py) recomposes the config with the user's overrides followed by these (Hydra's own composition:
choosing a student is choosing `student=<option>`), so a plan-chosen run and the same choices typed
by hand give the same config and the same stage hashes. The decisions, with "decided by plan" or
"pinned by you" per value, are written to `<run_dir>/decisions.json` beside `config.yaml`; the
stages never read the plan for themselves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from omegaconf import DictConfig, OmegaConf

from stratos.plan.planner import example_tokens

DECISIONS_JSON = "decisions.json"
PLAN = "decided by plan"
PINNED = "pinned by you"

# decision -> (config key it sets, override keys that pin it). A key pins when an override sets it or a
# key below it (`student.peft.r=4` pins the student), or when an experiment/debug file changed its value.
DECISION_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "teacher": ("teacher.name", ("teacher",)),
    "student": ("student.name", ("student",)),
    "strategy": ("strategy.name", ("strategy",)),
    "mode": ("strategy.alignment.mode", ("strategy",)),
    "server": ("servers.run_server", ("servers.run_server",)),
    "hardware": ("trainer.accelerator", ("trainer", "trainer.accelerator", "trainer.devices", "trainer.precision")),
    "trainer.max_steps": ("trainer.max_steps", ("trainer.max_steps",)),
    "trainer.max_minutes": ("trainer.max_minutes", ("trainer.max_steps", "trainer.max_minutes")),
    "trainer.batch_size": ("trainer.batch_size", ("trainer.batch_size",)),
    "lora_rank": ("student.peft.r", ("student",)),
}
# the values a file must change to pin the decision: which model or strategy it is (a debug file that
# shrinks the student's arch fixes the student as surely as `student=` would; one that only lowers the
# strategy's probe size leaves the choice of strategy to the plan)
COMPARED = {"teacher": ("teacher.name", "teacher.kind", "teacher.name_or_path"), "student": ("student",),
            "strategy": ("strategy.name",), "lora_rank": ("student",),
            "hardware": ("trainer.accelerator", "trainer.devices", "trainer.precision")}
GROUP_ONLY = {"trainer"}  # `trainer=gpu` pins the hardware; `trainer.lr=...` below it does not
# config files that set values across groups: what they set counts as the user's choice
VALUE_FILES = ("experiment", "debug")


@dataclass
class Decision:
    name: str  # e.g. "student"
    key: str  # the config key it sets
    value: object  # the value the run uses
    origin: str  # PLAN or PINNED
    override: str | None  # the Hydra override applying a planned value (None: pinned, nothing to apply)

    def as_dict(self) -> dict:
        return asdict(self)


def override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].strip()


def find_pins(overrides: list[str], cfg: DictConfig, baseline: DictConfig | None) -> list[str]:
    """Decisions the user fixed: named on the command line (`student=x`, `student.peft.r=4`,
    `trainer.max_steps=50`), or set to another value by an experiment/debug file they chose
    (`baseline` is the config composed without those files)."""
    keys = [override_key(o) for o in overrides]
    pins = set()
    for name, (target, pinning) in DECISION_KEYS.items():
        if any(k == p or (k.startswith(p + ".") and p not in GROUP_ONLY) for k in keys for p in pinning):
            pins.add(name)
        elif baseline is not None and any(OmegaConf.select(cfg, k) != OmegaConf.select(baseline, k)
                                          for k in COMPARED.get(name, (target,))):
            pins.add(name)
    if "hardware" in pins or "trainer.max_steps" in pins:
        pins.add("trainer.max_minutes")
    return sorted(pins)


def baseline_overrides(overrides: list[str]) -> list[str] | None:
    """The overrides minus the value files (experiment=..., debug=...); None when there are none."""
    rest = [o for o in overrides if override_key(o) not in VALUE_FILES]
    return rest if len(rest) < len(overrides) else None


def planned_steps(cfg: DictConfig, selected: dict, batch: int, calibration) -> int:
    """The plan's training tokens as optimizer steps: tokens / (batch x tokens per example)."""
    per_example = example_tokens(cfg, calibration, selected["student"])
    return max(1, math.ceil(float(selected["estimates"]["train_tokens"]) / (batch * per_example)))


def decisions(cfg: DictConfig, plan_json: dict, pins: list[str], calibration) -> list[Decision]:
    """Every decision the plan makes, with the value the run will use and where it came from."""
    sel = plan_json["selected"]
    e = sel["estimates"]
    gpu = sel["gpu"].rsplit("x", 1)[0]
    n_gpus = int(e["n_gpus"])
    pinned = set(pins)
    pc = cfg.planner
    batch = int(cfg.trainer.batch_size)
    planned: dict[str, tuple[object, list[str]]] = {
        "teacher": (sel["teacher"], [f"teacher={sel['teacher']}"]),
        "student": (sel["student"], [f"student={sel['student']}"]),
        "strategy": (sel["strategy"], [f"strategy={sel['strategy']}"]),
        "server": (sel["server"], [f"servers.run_server={sel['server']}"]),
    }
    if sel["strategy"] == "alignment" and sel["mode"] in ("logit", "sequence"):
        planned["mode"] = (sel["mode"], [f"strategy.alignment.mode={sel['mode']}"])
    if gpu == "cpu":
        planned["hardware"] = ("cpu", [] if str(cfg.trainer.accelerator) == "cpu" else ["trainer=cpu"])
    else:
        planned["hardware"] = (f"gpu x{n_gpus}", ["trainer=gpu", f"trainer.devices={n_gpus}"])
    if len(pc.micro_batch) > 1:  # batch is a decision only when the planner had a choice
        batch = int(sel["micro_batch"]) * max(1, n_gpus if gpu != "cpu" else 1)
        planned["trainer.batch_size"] = (batch, [f"trainer.batch_size={batch}"])
    if list(pc.lora_ranks):
        r = int(sel["lora_rank"])
        planned["lora_rank"] = (r, ["student.peft.method=none"] if r == 0 else
                                ["student.peft.method=lora", f"student.peft.r={r}"])
    steps = planned_steps(cfg, sel, batch, calibration)
    planned["trainer.max_steps"] = (steps, [f"trainer.max_steps={steps}"])
    deadline_min = float(cfg.constraints.deadline_h) * 60.0 - float(e.get("startup_hours") or 0.0) * 60.0
    if math.isfinite(deadline_min) and deadline_min > 0:
        minutes = round(deadline_min, 2)
        planned["trainer.max_minutes"] = (minutes, [f"trainer.max_minutes={minutes}"])
    out = []
    for name, (target, _) in DECISION_KEYS.items():
        if name in pinned:
            out.append(Decision(name, target, OmegaConf.select(cfg, target), PINNED, None))
        elif name in planned:
            value, ovs = planned[name]
            out.append(Decision(name, target, value, PLAN, " ".join(ovs) if ovs else None))
    return out


def as_run(cfg: DictConfig, pins: list[str], decided: list[str]) -> list[Decision]:
    """The decisions as the applied config holds them (what the run uses), with their origin."""
    return [Decision(name, target, OmegaConf.select(cfg, target), PINNED if name in pins else PLAN, None)
            for name, (target, _) in DECISION_KEYS.items() if name in pins or name in decided]


def overrides_of(ds: list[Decision]) -> list[str]:
    """The Hydra overrides that apply the planned decisions, in order."""
    return [o for d in ds if d.origin == PLAN and d.override for o in d.override.split(" ")]


def summary(ds: list[Decision]) -> str:
    """One line per decision for the log and the report."""
    return "\n".join(f"  {d.name:<20} {str(d.value):<36} {d.origin}" for d in ds)
