"""The distill stage's artifact contract: the names of the files it writes in its directory.

Readers (evaluate, export, report) use these names with the stage's manifest (`manifest.path(NAME)`),
so no stage imports another stage's module, and a name is written in one place.
"""

from __future__ import annotations

import csv
import re

MODEL_DIR = "model"  # merged HF checkpoint + tokenizer (save_pretrained; loads in transformers 4.x and 5.x)
ADAPTER_DIR = "adapter"  # LoRA students: the adapter alone (multi-LoRA serving) ...
BASE_MODEL_DIR = "base_model"  # ... and the base it applies to
CHECKPOINTS_DIR = "checkpoints"  # Lightning checkpoints step_{step:06d}.ckpt + last.ckpt (resume)
STRATEGY_JSON = "strategy.json"  # the decision: name, mode, reason, teacher probe accuracy, features, refusals
PREFLIGHT_JSON = "preflight.json"  # vocab / context / memory checks
TOKEN_KD_JSON = "token_kd.json"  # black-box teacher: whether its top-k logprobs became token-level KD targets
TOPK_STORE_JSON = "topk_store.json"  # offline teacher: where its top-k log-probs live, bytes/token
CROSS_TOKENIZER_JSON = "cross_tokenizer.json"  # cross-tokenizer KD: shared vocabulary, aligned share of tokens
ROUTING_JSON = "routing.json"  # several teachers: route, reason, probe table (auto), rows + token shares per teacher
# The `logger` group's directory is its `save_dir` (an output of its own name, `logs` by default). Lightning's
# CSVLogger writes one version per launch there (a resumed run adds the next one):
CSV_METRICS = "version_*/metrics.csv"
_VERSION = re.compile(r"version_(\d+)/metrics\.csv$")


def read_train_metrics(manifest) -> list[dict]:
    """The CSV logger's step metrics of a distill stage: one dict per logged step, ascending, with `step`
    (the optimizer steps done: Lightning's 0-based `step` column + 1) and every metric logged at that step.

    Rows of one step are merged (Lightning writes training and validation metrics on separate rows), and
    across launches the later version wins: a run resumed from a checkpoint re-trains, and re-logs, every
    step after it, so a step is read once even when the killed launch had logged it too. [] when no CSV
    logger wrote into the stage (logger=none, tensorboard, ...).
    """
    import fsspec

    merged: dict[int, dict] = {}
    for url in manifest.outputs.values():
        fs, path = fsspec.core.url_to_fs(f"{url.rstrip('/')}/{CSV_METRICS}")
        versions = {int(m.group(1)): p for p in fs.glob(path) if (m := _VERSION.search(p))}
        for _, found in sorted(versions.items()):
            with fs.open(found, "r", newline="") as f:
                for row in csv.DictReader(f):
                    step = int(float(row.pop("step"))) + 1
                    merged.setdefault(step, {}).update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return [{"step": s, **merged[s]} for s in sorted(merged)]
