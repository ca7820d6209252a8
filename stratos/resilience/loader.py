r"""A training DataLoader that resumes mid-epoch exactly and gives DDP the same batches as 1 process.

Two properties a plain `DataLoader(shuffle=True)` lacks:

* **Exact resume.** Lightning restores the step counter from a mid-epoch checkpoint but a plain
  loader restarts the epoch from its first batch, in an order drawn from the global RNG: a
  resumed run then sees other batches than an uninterrupted one. Here the order of epoch $e$ is
  a pure function of `(seed, e)` and the loader reports how many batches it has handed out
  (Lightning's `_Stateful` protocol: `state_dict` / `load_state_dict`, stored in the
  checkpoint), so a resumed epoch continues at the next unseen batch.

* **DDP = 1 process.** With world size $W$, per-device batch $B$ and global batch $G = W B$,
  global batch $k$ of epoch $e$ is the same index set for every $W$:

  $$\pi_e = \mathrm{randperm}(n;\ \mathrm{seed} + e), \qquad
    \mathcal{B}_k = \pi_e[kG : (k+1)G], \qquad
    \mathcal{B}_k^{(r)} = \pi_e[kG + rB : kG + (r+1)B]$$

  so rank $r$'s batch is its slice of the 1-process batch. (Lightning must not swap in a
  `DistributedSampler`: pass `use_distributed_sampler=False` to the Trainer.)

Every rank gets the same number of batches, $\lfloor n/G \rfloor$ (`drop_last=True`) or
$\lceil n/G \rceil$ with the last global batch padded from the start of $\pi_e$ (as
`DistributedSampler` pads); uneven counts would hang DDP at the last all-reduce.
Validation loaders need none of this: keep a plain `DataLoader(shuffle=False)`.

* **Length grouping** (optional, `lengths=`; HF Trainer's `group_by_length`): $\pi_e$ is cut into
  megabatches of 50 global batches, each sorted by length and cut into global batches, whose order
  inside the megabatch is shuffled again. Batches then hold similar lengths (less padding) while
  the order stays a pure function of `(seed, e)`, so resume and DDP keep both properties above.

* **Phases** (optional, `phases=`; a curriculum, stratos/distill/curriculum.py): a list of
  (pool of item indices, global batches). The epoch is then the whole schedule: phase p's
  batches come from its own pool only, in shuffled passes over it (pass j drawn from
  `(seed, e, p, j)`), one phase after the other. The order is still a pure function of the
  seed, so resume and DDP keep both properties; length grouping applies inside each phase.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

STATE_VERSION = 1


def hash_seed(*parts: int) -> int:
    """A 63-bit generator seed from integers (no two small tuples collide, unlike seed + epoch + p)."""
    out = 0
    for x in parts:
        out = (out * 1_000_003 + int(x)) % (1 << 63)
    return out


def _world() -> tuple[int, int]:
    """(world size, rank) of the initialised process group, else (1, 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class ResumableSampler(Sampler[int]):
    """Indices of this rank's batches for epoch `epoch`, skipping `skip_batches` already trained.

    `batch_size` is per device; world size and rank are read from torch.distributed when
    iterating (Lightning initialises the process group before the first epoch).
    """

    MEGABATCH = 50  # global batches per length-sorted group (HF's LengthGroupedSampler uses 50 too)

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True,
                 world_size: int | None = None, rank: int | None = None, lengths: list[int] | None = None,
                 phases: list[tuple[list[int], int]] | None = None) -> None:
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"ResumableSampler needs n > 0 and batch_size > 0 (got n={n}, batch_size={batch_size})")
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"ResumableSampler got {len(lengths)} lengths for {n} items")
        for pool, batches in phases or []:
            if not pool or batches <= 0 or min(pool) < 0 or max(pool) >= n:
                raise ValueError(f"ResumableSampler phases need a non-empty pool of indices < {n} and batches > 0 "
                                 f"(got {len(pool)} indices, {batches} batches)")
        self.phases = [(torch.as_tensor(pool, dtype=torch.long), int(b)) for pool, b in phases or []]
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.lengths = None if lengths is None else torch.as_tensor(lengths, dtype=torch.long)
        self._world_size, self._rank = world_size, rank
        self.epoch = 0
        self.skip_batches = 0  # batches of `self.epoch` already trained (set by a resume)

    def world(self) -> tuple[int, int]:
        w, r = _world()
        return (self._world_size or w, self._rank if self._rank is not None else r)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start; a new epoch starts from its first batch."""
        if epoch != self.epoch:
            self.skip_batches = 0
        self.epoch = epoch

    def num_batches(self) -> int:
        """Batches per epoch on every rank."""
        if self.phases:
            return sum(b for _, b in self.phases)
        g = self.batch_size * self.world()[0]
        return max(1, self.n // g) if self.drop_last else math.ceil(self.n / g)

    def order(self, epoch: int) -> torch.Tensor:
        """$\\pi_e$, padded/truncated to whole global batches. Shape (num_batches * G,)."""
        if self.phases:
            return torch.cat([self._phase_order(epoch, p) for p in range(len(self.phases))])
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        G = self.batch_size * self.world()[0]
        total = self.num_batches() * G
        if total > self.n:  # pad by wrapping around (also covers n < G with drop_last)
            perm = perm.repeat(math.ceil(total / self.n))
        perm = perm[:total]
        if self.lengths is not None and self.shuffle:
            perm = self._group_by_length(perm, G, epoch)
        return perm

    def _phase_order(self, epoch: int, p: int) -> torch.Tensor:
        """Phase p's (batches * G,) item indices: whole shuffled passes over its pool, cut to its batches."""
        pool, batches = self.phases[p]
        G = self.batch_size * self.world()[0]
        need, passes = batches * G, []
        while sum(len(x) for x in passes) < need:
            if self.shuffle:
                g = torch.Generator().manual_seed(hash_seed(self.seed, epoch, p, len(passes)))
                passes.append(pool[torch.randperm(len(pool), generator=g)])
            else:
                passes.append(pool)
        perm = torch.cat(passes)[:need]
        if self.lengths is not None and self.shuffle:
            perm = self._group_by_length(perm, G, epoch * 1_000 + p)
        return perm

    def _group_by_length(self, perm: torch.Tensor, G: int, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + epoch + 1_000_003)  # independent of pi_e's stream
        out = []
        for mega in perm.split(self.MEGABATCH * G):  # (<= 50 G,)
            by_len = mega[torch.sort(self.lengths[mega], descending=True, stable=True).indices]
            batches = by_len.view(-1, G)  # (m, G): each global batch of similar lengths
            out.append(batches[torch.randperm(batches.shape[0], generator=g)].reshape(-1))
        return torch.cat(out)

    def __iter__(self) -> Iterator[int]:
        w, r = self.world()
        b, g = self.batch_size, self.batch_size * w
        perm = self.order(self.epoch).view(-1, g)  # (num_batches, G): row k = global batch k
        mine = perm[:, r * b:(r + 1) * b]  # (num_batches, B): this rank's slice of each
        yield from mine[self.skip_batches:].reshape(-1).tolist()

    def __len__(self) -> int:
        return self.num_batches() * self.batch_size


class ResumableLoader(DataLoader):
    """`DataLoader` over a `ResumableSampler`, with Lightning's `state_dict`/`load_state_dict`.

    `batch_size` is per device. Counting happens where batches leave the loader (not in the
    sampler, which worker processes read ahead), so the count equals batches trained: Lightning
    does not prefetch from loaders with a length.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True, lengths: list[int] | None = None,
                 phases: list[tuple[list[int], int]] | None = None, **kwargs: Any) -> None:
        sampler = ResumableSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed,  # type: ignore[arg-type]
                                   drop_last=drop_last, lengths=lengths, phases=phases)
        # The sampler already yields whole batches' worth of indices: the loader must drop nothing.
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=False, **kwargs)
        self.resumable_sampler = sampler
        self.batches_done = 0  # batches handed out in the current epoch (incl. skipped ones)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator: nothing (not even worker start-up) happens before the first next(),
        # which Lightning calls after `set_epoch`, so workers never read the previous epoch's order.
        s = self.resumable_sampler
        self.batches_done = s.skip_batches
        for batch in super().__iter__():
            self.batches_done += 1
            yield batch
        s.skip_batches = 0  # a finished epoch leaves nothing to skip

    def state_dict(self) -> dict[str, Any]:
        s = self.resumable_sampler
        return {"version": STATE_VERSION, "epoch": s.epoch, "batches_done": self.batches_done, "n": s.n,
                "global_batch": s.batch_size * s.world()[0], "seed": s.seed, "shuffle": s.shuffle,
                "group_by_length": s.lengths is not None, "phases": self._phase_batches()}

    def _phase_batches(self) -> list[int]:
        return [b for _, b in self.resumable_sampler.phases]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.resumable_sampler
        here = {"n": s.n, "global_batch": s.batch_size * s.world()[0], "seed": s.seed, "shuffle": s.shuffle,
                "group_by_length": s.lengths is not None, "phases": self._phase_batches()}
        older = {"group_by_length": False, "phases": []}  # checkpoints from before these keys: not grouped, no phases
        there = {k: state.get(k, older.get(k)) for k in here}
        if here != there:
            # Another dataset size / global batch / seed cannot continue the same order.
            raise ValueError(f"checkpoint's data order {there} does not match this loader {here}: cannot resume "
                             f"exactly (start a new run directory, or keep the batch size and data)")
        s.epoch = int(state["epoch"])
        s.skip_batches = int(state["batches_done"])
        self.batches_done = s.skip_batches
