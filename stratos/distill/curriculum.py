r"""A staged curriculum: training rows tagged with a stage train in stage order, each for its share of the steps.

A row of train.jsonl may carry an integer `curriculum_stage` (Mahjong writes one per `task.curriculum` stage; a
user file can carry the column itself). With two or more stages, the training order is no longer passes over the
whole set but phases, one per stage in increasing order:

    phase s  = trainer.max_steps * n_s / N global batches (largest remainders, so they sum to max_steps),
               drawn in shuffled passes over stage s's rows alone
    n_s      = supervised rows of stage s,  N = all supervised rows

so the steps follow the data: a stage written with half the rows gets half the steps, and every stage's rows are
seen about equally often. Corpus windows (knowledge injection) carry no stage: they are dealt out to the phases in
proportion to n_s (in their dataset order, which is already shuffled), so each phase keeps the corpus share the
run asked for. Why phases and not a schedule of weights over one pool: the stages of a curriculum are usually
different data mixes (Mahjong: the natural mix first, then a flat one), and each mix needs its own rows -- one
pool drawn at the natural mix holds too few many-sided waits to be reweighted into a flat one.

The phases are a pure function of the rows and `max_steps`, and the loader's order a pure function of the seed
(stratos/resilience/loader.py), so a resumed run continues the same curriculum; resuming with other phases is
refused by the loader's state check. A stop by `trainer.max_minutes` ends inside whatever phase it reaches.
"""

from __future__ import annotations

import logging
from typing import Sequence

from stratos.errors import UserError
from stratos.tasks.base import NO_STAGE, largest_remainder

log = logging.getLogger("stratos")


def curriculum_phases(stages: Sequence[int], total_batches: int) -> list[tuple[list[int], int]] | None:
    """(item indices, global batches) per stage in increasing order; None when fewer than two stages are present.

    `stages` holds one entry per dataset item; items without a stage (NO_STAGE: corpus windows, untagged rows) are
    dealt to the phases in proportion to their stages' rows, as the module docstring says of corpus windows."""
    tagged = sorted({s for s in stages if s != NO_STAGE})
    if len(tagged) < 2:
        return None
    pools: dict[int, list[int]] = {s: [] for s in tagged}
    loose = []
    for i, s in enumerate(stages):
        (pools[s] if s != NO_STAGE else loose).append(i)
    sizes = [len(pools[s]) for s in tagged]
    batches = largest_remainder(total_batches, sizes)
    if min(batches) == 0:
        raise UserError(f"invalid value for 'trainer.max_steps': {total_batches} leaves a curriculum stage with no "
                        f"step (rows per stage {sizes}; allowed: at least one step per stage, or task.curriculum=[])")
    cuts = largest_remainder(len(loose), sizes) if loose else [0] * len(tagged)
    start, phases = 0, []
    for s, b, c in zip(tagged, batches, cuts):
        phases.append((pools[s] + loose[start:start + c], b))
        start += c
    log.info("curriculum: %d stages, steps %s for rows %s", len(tagged), batches, sizes)
    return phases
