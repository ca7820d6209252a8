"""ResumableSampler / ResumableLoader: DDP slices = 1-process batches, exact mid-epoch resume."""

from __future__ import annotations

import pytest
import torch

from stratos.resilience.loader import ResumableLoader, ResumableSampler


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


def _padding(batch_lists, lengths) -> int:
    """Pad tokens a right-padding collate would add over these batches."""
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batch_lists)


def test_group_by_length_cuts_padding_keeps_the_epoch_and_the_ddp_slices():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, 400, (1000,), generator=g).tolist()
    plain = ResumableSampler(1000, 16, seed=5)
    grouped = ResumableSampler(1000, 16, seed=5, lengths=lengths)
    for s in (plain, grouped):
        s.set_epoch(1)
    # same examples in the epoch, only batched differently
    assert sorted(grouped) == sorted(plain)
    assert _padding(batches(grouped), lengths) < 0.25 * _padding(batches(plain), lengths)
    # a pure function of (seed, epoch): another sampler gives the same batches, another epoch others
    again = ResumableSampler(1000, 16, seed=5, lengths=lengths)
    again.set_epoch(1)
    assert batches(again) == batches(grouped)
    again.set_epoch(2)
    assert batches(again) != batches(grouped)
    # batch lengths are not sorted over the epoch (batches are shuffled inside each megabatch)
    maxes = [max(lengths[i] for i in b) for b in batches(grouped)[:50]]
    assert maxes != sorted(maxes, reverse=True) and maxes != sorted(maxes)
    # DDP: the two ranks' slices union to the 1-process global batch
    ranks = [ResumableSampler(1000, 8, seed=5, lengths=lengths, world_size=2, rank=r) for r in range(2)]
    for s in ranks:
        s.set_epoch(1)
    for k, full in enumerate(batches(grouped)):
        assert batches(ranks[0])[k] + batches(ranks[1])[k] == full


def test_group_by_length_resumes_mid_epoch_exactly():
    lengths = [(i * 37) % 91 + 5 for i in range(200)]
    ds = [[i] for i in range(200)]
    full = [b.tolist() for b in ResumableLoader(ds, 8, seed=2, lengths=lengths, collate_fn=torch.tensor)]
    first = ResumableLoader(ds, 8, seed=2, lengths=lengths, collate_fn=torch.tensor)
    it = iter(first)
    seen = [next(it).tolist() for _ in range(7)]
    resumed = ResumableLoader(ds, 8, seed=2, lengths=lengths, collate_fn=torch.tensor)
    resumed.load_state_dict(first.state_dict())
    assert seen + [b.tolist() for b in resumed] == full
    with pytest.raises(ValueError, match="cannot resume exactly"):  # switching grouping changes the order
        ResumableLoader(ds, 8, seed=2, collate_fn=torch.tensor).load_state_dict(first.state_dict())


def test_group_by_length_needs_one_length_per_item():
    with pytest.raises(ValueError, match="3 lengths for 4 items"):
        ResumableSampler(4, 2, lengths=[1, 2, 3])


PHASES = [(list(range(0, 10)), 3), (list(range(10, 30)), 4)]  # stage 0: rows 0-9 for 3 batches; stage 1: 10-29 for 4


def test_phases_draw_each_phase_from_its_own_pool_in_order():
    s = ResumableSampler(30, 4, seed=1, world_size=1, rank=0, phases=PHASES)
    got = batches(s)
    assert s.num_batches() == 7 == len(got)
    assert all(i < 10 for b in got[:3] for i in b) and all(10 <= i < 30 for b in got[3:] for i in b)
    # 12 draws from 10 rows: one whole pass, then the start of another (every row seen before any repeats)
    first = sum(got[:3], [])
    assert sorted(first[:10]) == list(range(10)) and len(set(first[10:])) == 2
    assert got == batches(ResumableSampler(30, 4, seed=1, world_size=1, rank=0, phases=PHASES))  # pure in the seed
    assert got != batches(ResumableSampler(30, 4, seed=2, world_size=1, rank=0, phases=PHASES))


@pytest.mark.parametrize("lengths", [None, [(i * 7) % 13 + 1 for i in range(30)]])
def test_phases_give_ddp_ranks_slices_of_the_one_process_batch(lengths):
    one = batches(ResumableSampler(30, 4, seed=1, world_size=1, rank=0, phases=PHASES, lengths=lengths))
    ranks = [batches(ResumableSampler(30, 2, seed=1, world_size=2, rank=r, phases=PHASES, lengths=lengths))
             for r in range(2)]
    assert [a + b for a, b in zip(*ranks)] == one


def test_phases_resume_mid_curriculum_exactly_and_refuse_other_phases():
    expected = [b.tolist() for b in ResumableLoader(Rows(), 4, seed=5, phases=PHASES)]
    a = ResumableLoader(Rows(), 4, seed=5, phases=PHASES)
    it = iter(a)
    seen = [next(it).tolist() for _ in range(4)]  # into the second phase
    state = a.state_dict()
    assert state["phases"] == [3, 4]
    b = ResumableLoader(Rows(), 4, seed=5, phases=PHASES)
    b.load_state_dict(state)
    assert seen + [x.tolist() for x in b] == expected
    with pytest.raises(ValueError, match="cannot resume exactly"):
        ResumableLoader(Rows(), 4, seed=5, phases=[(list(range(10)), 4), (list(range(10, 30)), 3)]).load_state_dict(state)
    with pytest.raises(ValueError, match="cannot resume exactly"):
        ResumableLoader(Rows(), 4, seed=5).load_state_dict(state)
    old = {k: v for k, v in ResumableLoader(Rows(), 4, seed=5).state_dict().items() if k != "phases"}
    ResumableLoader(Rows(), 4, seed=5).load_state_dict(old)  # a checkpoint from before phases: none


def test_phases_need_valid_pools():
    with pytest.raises(ValueError, match="non-empty pool"):
        ResumableSampler(30, 4, phases=[([], 3)])
    with pytest.raises(ValueError, match="non-empty pool"):
        ResumableSampler(30, 4, phases=[([0, 30], 3)])
    with pytest.raises(ValueError, match="batches > 0"):
        ResumableSampler(30, 4, phases=[([0, 1], 0)])
