"""`python -m stratos.acme [--out DIR] [hydra overrides ...]`: the ACME application.

Composes ACME's own root config (`conf/acme.yaml`, schema `AcmeAppConfig`) with your overrides, e.g.
`seed=1 acme.executor.kind=inline acme.backbone.family=llama device_classes.0.max_size_mb=0.3`, runs
`stratos.acme.app.run` in `<out>/acme/`, writes its manifest and logs the tables. User mistakes print
one line and exit 2.

Before ACME had its own config it ran inside the distillation config as `strategy=acme cloud=edge`,
with keys `strategy.acme.*` and `cloud.device_classes`; those spellings are still read, with a
deprecation line each, for one release.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

RENAMED = (("strategy.acme.", "acme."), ("cloud.device_classes", "device_classes"), ("cloud.slurm.", "slurm."),
           ("acme.engine.", "acme.executor."))  # the job executor was called `engine`
DROPPED = ("strategy=acme", "cloud=edge", "servers=edge", "+task=mahjong")  # ACME needs no group choice


def translate_old_overrides(overrides: list[str], warn: bool = True) -> list[str]:
    """The pre-application spellings, read as today's keys (one warning per old spelling when `warn`).

    The bridge from `python -m stratos ... strategy=acme` translates silently: its own single
    warning line already shows the whole new command.
    """
    out, warned = [], set()

    def warning(key: str, line: str) -> None:
        if warn and key not in warned:
            warned.add(key)
            print(line, file=sys.stderr)

    for arg in overrides:  # applied in order: strategy.acme.engine.kind -> acme.engine.kind -> acme.executor.kind
        if arg in DROPPED:
            warning(arg, f"stratos: warning: '{arg}' is no longer needed: ACME has its own config "
                         "(python -m stratos.acme)")
            continue
        for old, new in RENAMED:
            if arg.lstrip("+~").startswith(old):
                new_arg = arg.replace(old, new, 1)
                warning(old, f"stratos: warning: '{old}' is deprecated and will be removed in the next release; "
                             f"'{old}*' is read as '{new}*' (e.g. {arg!r} as {new_arg!r})")
                arg = new_arg
        out.append(arg)
    return out


def compose_acme(overrides: list[str]):
    from stratos.acme.config import register_acme_configs
    from stratos.config import CONFIG_PACKAGE

    register_acme_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        return compose("acme", overrides=translate_old_overrides(list(overrides)))


def main(argv: list[str] | None = None) -> int:
    from stratos import artifacts
    from stratos.acme.app import run
    from stratos.artifacts import StageContext
    from stratos.errors import describe_config_error, find_user_error

    ap = argparse.ArgumentParser(prog="python -m stratos.acme", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="outputs/acme", help="run directory (ACME writes <out>/acme/)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. seed=1 acme.executor.kind=inline")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        cfg = compose_acme(args.overrides)
    except Exception as e:  # Hydra / OmegaConf composition errors are the user's overrides
        print(f"stratos: error: {describe_config_error(e)}", file=sys.stderr)
        return 2
    h = artifacts.config_hash(cfg.acme, cfg.device_classes, cfg.seed)
    ctx = StageContext(run_dir=os.path.abspath(args.out), stage="acme", config_hash=h)
    try:
        manifest = run(cfg, ctx)
    except Exception as e:
        err = find_user_error(e)
        if err is None:
            raise
        print(f"stratos: error: {err}", file=sys.stderr)
        return 2
    artifacts.write_json(artifacts.join(ctx.out_dir, artifacts.MANIFEST_NAME), artifacts.asdict_manifest(manifest))
    print(f"acme: tables in {artifacts.join(ctx.out_dir, 'report.txt')}, everything measured in report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
