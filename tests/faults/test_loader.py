"""ResumableSampler / ResumableLoader: DDP slices = 1-process batches, exact mid-epoch resume."""

from __future__ import annotations

import pytest
import torch

from stratos.faults.loader import ResumableLoader, ResumableSampler


def batches(sampler: ResumableSampler) -> list[list[int]]:
    idx = list(sampler)
    b = sampler.batch_size
    return [idx[i:i + b] for i in range(0, len(idx), b)]


@pytest.mark.parametrize("n,global_batch,world", [(96, 8, 2), (100, 12, 3), (10, 16, 2), (7, 4, 4)])
def test_rank_slices_union_to_the_one_process_batch(n, global_batch, world):
    one = ResumableSampler(n, global_batch, seed=3, world_size=1, rank=0)
    one.set_epoch(2)
    ranks = []
    for r in range(world):
        s = ResumableSampler(n, global_batch // world, seed=3, world_size=world, rank=r)
        s.set_epoch(2)
        ranks.append(batches(s))
    # every rank has the same number of batches (else DDP hangs at the last all-reduce)
    assert len({len(b) for b in ranks}) == 1
    assert len(ranks[0]) == len(batches(one)) == one.num_batches()
    for k, full in enumerate(batches(one)):
        assert sum((ranks[r][k] for r in range(world)), []) == full
    assert len(one) == one.num_batches() * global_batch


def test_epochs_differ_and_repeat_by_seed():
    s = ResumableSampler(50, 5, seed=0, world_size=1, rank=0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e0) == sorted(e1) == list(range(50)) and e0 != e1
    t = ResumableSampler(50, 5, seed=0, world_size=1, rank=0)
    t.set_epoch(1)
    assert list(t) == e1
    assert list(ResumableSampler(50, 5, shuffle=False, world_size=1, rank=0)) == list(range(50))


def test_drop_last_and_padding():
    s = ResumableSampler(10, 4, drop_last=True, world_size=1, rank=0)
    assert s.num_batches() == 2 and len(set(s)) == 8
    p = ResumableSampler(10, 4, drop_last=False, world_size=1, rank=0)
    idx = list(p)
    assert p.num_batches() == 3 and len(idx) == 12 and set(idx) == set(range(10))  # 2 padded from the start


def test_skip_only_applies_to_the_resumed_epoch():
    s = ResumableSampler(40, 4, seed=1, world_size=1, rank=0)
    s.set_epoch(3)
    full = batches(s)
    s.skip_batches = 4
    assert batches(s) == full[4:]
    s.set_epoch(3)  # Lightning re-announces the same epoch on a mid-epoch restart: keep skipping
    assert batches(s) == full[4:]
    s.set_epoch(4)  # a new epoch starts at its first batch
    assert len(batches(s)) == len(full)


class Rows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 30

    def __getitem__(self, i: int) -> int:
        return i


def test_loader_state_resumes_mid_epoch_exactly():
    ref = ResumableLoader(Rows(), 4, seed=5)
    ref.resumable_sampler.set_epoch(1)
    expected = [b.tolist() for b in ref]

    a = ResumableLoader(Rows(), 4, seed=5)
    a.resumable_sampler.set_epoch(1)
    it = iter(a)
    seen = [next(it).tolist() for _ in range(3)]
    state = a.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 3

    b = ResumableLoader(Rows(), 4, seed=5)  # a new process: fresh loader, then Lightning restores
    b.load_state_dict(state)
    rest = [x.tolist() for x in b]
    assert seen + rest == expected
    assert b.state_dict()["batches_done"] == len(expected)
    # the next epoch is whole again
    b.resumable_sampler.set_epoch(2)
    assert len(list(b)) == len(expected)


def test_loader_refuses_a_different_data_order():
    state = ResumableLoader(Rows(), 4, seed=5).state_dict()
    with pytest.raises(ValueError, match="cannot resume exactly"):
        ResumableLoader(Rows(), 6, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="cannot resume exactly"):
        ResumableLoader(Rows(), 4, seed=6).load_state_dict(state)


def test_lightning_sees_the_loader_as_stateful():
    from lightning.fabric.utilities.types import _Stateful

    assert isinstance(ResumableLoader(Rows(), 4), _Stateful)
    assert not isinstance(torch.utils.data.DataLoader(Rows(), 4), _Stateful)
