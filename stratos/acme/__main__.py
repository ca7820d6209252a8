"""`python -m stratos.acme [--out DIR] [hydra overrides ...]`: run the ACME stage on its own.

Composes the real config tree with `strategy=acme cloud=edge` (plus your overrides, e.g.
`strategy.acme.engine.kind=inline seed=1 strategy.acme.backbone.family=llama`), runs
`stratos.acme.stage.run` in `<out>/acme/`, writes its manifest, logs the tables. User mistakes
print one line and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException


def compose_acme(overrides: list[str]):
    from stratos.acme.config import register_acme_configs
    from stratos.config import CONFIG_PACKAGE, register_configs

    register_configs()
    register_acme_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        return compose("config", overrides=["+task=mahjong", "strategy=acme", "cloud=edge", *overrides])


def main(argv: list[str] | None = None) -> int:
    from stratos import artifacts
    from stratos.acme.stage import run
    from stratos.artifacts import StageContext
    from stratos.errors import UserError

    ap = argparse.ArgumentParser(prog="python -m stratos.acme", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="outputs/acme", help="run directory (the stage writes <out>/acme/)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. seed=1 strategy.acme.engine.kind=inline")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        cfg = compose_acme(args.overrides)
        h = artifacts.config_hash(cfg.strategy, cfg.cloud, cfg.seed)
        ctx = StageContext(run_dir=os.path.abspath(args.out), stage="acme", config_hash=h)
        manifest = run(cfg, ctx)
    except (UserError, HydraException, OmegaConfBaseException) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    artifacts.write_json(artifacts.join(ctx.out_dir, artifacts.MANIFEST_NAME), artifacts.asdict_manifest(manifest))
    print(f"acme: tables in {artifacts.join(ctx.out_dir, 'report.txt')}, everything measured in report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
