"""The command line that runs the remaining pipeline stages anywhere (Slurm job, cloud VM, local shell).

The launching CLI has already planned; the launched one must not plan and launch again
(`planner.execute=false`), must write into the same run directory (`hydra.run.dir`) so finished
stages are reused (`pipeline.resume=true`), and runs only the stages still to do.
"""

from __future__ import annotations

import re
import sys

from hydra.core.override_parser.types import Quote, QuotedString

_KEYWORDS = {"true", "false", "null", "nan", "inf"}  # Hydra would read these as bool/None/float


def hydra_quote(text: str) -> str:
    """`text` as one quoted Hydra override value: spaces, commas, `=`, quotes and backslashes survive."""
    return QuotedString(text=text, quote=Quote.single).with_quotes()


def hydra_value(text: str) -> str:
    """`text` bare when Hydra reads it back as that same string (a plain name), else quoted."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) and text.lower() not in _KEYWORDS
    return text if plain else hydra_quote(text)


def stratos_command(overrides: list[str], run_dir: str, stages: list[str]) -> list[str]:
    """argv for `python -m stratos` that runs `stages` into `run_dir` with the user's `overrides`.

    `overrides` are passed through as given (they are already Hydra overrides); `run_dir` and the
    stage names are quoted so that a path like `/data/my runs,v2` reaches Hydra as one string.
    """
    stage_list = ",".join(hydra_value(s) for s in stages)
    return [sys.executable, "-m", "stratos", *overrides, "planner.execute=false",
            f"hydra.run.dir={hydra_quote(run_dir)}", f"pipeline.stages=[{stage_list}]", "pipeline.resume=true"]
