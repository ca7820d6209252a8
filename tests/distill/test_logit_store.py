"""The offline top-k store: exact top-k, round trips (local and memory://), keys, atomic publishing."""

from __future__ import annotations

import multiprocessing as mp
import os

import fsspec
import pytest
import torch

from stratos.distill import logit_store as S
from stratos.distill.losses import ChunkedDistillLoss, kd_loss, topk_kd_loss
from stratos.errors import UserError

V, K = 300, 32


def _key(**kw):
    base = dict(teacher_id="tiny_teacher", dataset_hash="d0", k=K, tokenizer_hash="t0", temperature=1.0)
    return S.StoreKey(**{**base, **kw})


def _batches(seed=0, vocab=V, n_batches=3, B=2, T=9):
    """Teacher logits with masks: right padding, left padding, and no mask."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_batches):
        logits = 3 * torch.randn(B, T, vocab, generator=g)
        mask = torch.ones(B, T, dtype=torch.bool)
        if i == 0:
            mask[1, 6:] = False  # right padded: 6 real positions (none when T <= 6)
        elif i == 1:
            mask[0, :4] = False  # left padded: 5 real positions
        out.append((logits, None if i == 2 else mask))
    return out


def _expected(batches, k=K, T=1.0):
    seqs = []
    for logits, mask in batches:
        rows = S.topk_logprobs(logits, k, T)
        for b in range(logits.shape[0]):
            keep = torch.ones(logits.shape[1], dtype=torch.bool) if mask is None else mask[b]
            seqs.append((rows.ids[b][keep], rows.logprobs[b][keep], rows.tail[b][keep]))
    return seqs


def _assert_matches(reader, expected):
    assert reader.n_sequences == len(expected)
    for i, (ids, lp, tail) in enumerate(expected):
        got = reader.read(i)
        assert got.ids.dtype == torch.int16 and got.logprobs.dtype == torch.float16
        assert torch.equal(got.ids.long(), ids)
        assert torch.equal(got.logprobs, lp.half())
        assert torch.equal(got.tail, tail.half())


def test_topk_logprobs_is_exact():
    logits = 2 * torch.randn(3, 5, V)
    rows = S.topk_logprobs(logits, K, temperature=2.0)
    lp = torch.log_softmax(logits / 2.0, -1)
    vals, ids = lp.topk(K, -1)
    assert torch.equal(rows.ids, ids) and torch.allclose(rows.logprobs, vals)
    assert torch.allclose(rows.tail.exp(), 1 - vals.exp().sum(-1), atol=1e-6)
    assert torch.isneginf(S.topk_logprobs(logits, V).tail).all()  # k = V: nothing outside
    with pytest.raises(UserError, match="top_k"):
        S.topk_logprobs(logits, V + 1)


def test_round_trip_local_with_padding_and_size(tmp_path):
    store = S.TopKStore(str(tmp_path), _key())
    assert not store.exists()
    batches = _batches()
    assert store.write(batches, vocab_size=V) is True

    def must_not_run():
        raise AssertionError("the teacher ran although the store exists")
        yield

    assert store.write(must_not_run(), vocab_size=V) is False  # reuse: no teacher forward at all
    reader = store.open()
    expected = _expected(batches)
    _assert_matches(reader, expected)
    assert [reader.length(i) for i in range(reader.n_sequences)] == [9, 6, 5, 9, 9, 9]
    # compact: int16 ids + fp16 log-probs + fp16 tail + int64 offsets, and the files say so
    meta = reader.meta
    data_dir = tmp_path / "topk" / store.key.digest() / meta["data"]
    on_disk = sum(f.stat().st_size for f in data_dir.iterdir())
    assert on_disk == meta["data_bytes"]
    assert meta["bytes_per_token"] == pytest.approx(130 + 8 * 7 / 47)
    assert meta["bytes_per_token"] <= 150
    # batches laid out like the training batch
    rb = reader.read_batch([1, 2], length=10)
    assert rb.ids.shape == (2, 10, K) and rb.tail.shape == (2, 10)
    assert torch.equal(rb.logprobs[0, :6], expected[1][1].half()) and torch.isneginf(rb.tail[0, 6:]).all()
    lb = reader.read_batch([1, 2], length=10, padding_side="left")
    assert torch.equal(lb.ids[1, 5:].long(), expected[2][0]) and torch.isneginf(lb.tail[1, :5]).all()
    assert torch.equal(store.open(preload=True).read(4).logprobs, reader.read(4).logprobs)
    assert torch.equal(store.read(4).ids, reader.read(4).ids)
    assert torch.equal(store.read_batch([0, 3]).tail, reader.read_batch([0, 3]).tail)
    with pytest.raises(ValueError, match="length"):
        reader.read_batch([0], length=3)


def test_round_trip_memory_fs_and_uint16_ids():
    fsspec.filesystem("memory").store.clear()
    vocab = 40000  # > 32767: ids stored as uint16, read back as int32
    store = S.TopKStore("memory://cache", _key(k=4))
    batches = _batches(seed=1, vocab=vocab, n_batches=1, B=2, T=5)
    store.write(batches, vocab_size=vocab)
    got = store.open().read(0)
    assert got.ids.dtype == torch.int32
    want = S.topk_logprobs(batches[0][0], 4).ids[0]
    assert torch.equal(got.ids.long(), want) and (want > 32767).any()


def test_keys_are_content_addressed():
    assert S.TopKStore("r", _key()).url == S.TopKStore("r", _key()).url
    digests = {_key(**kw).digest() for kw in ({}, {"k": 16}, {"teacher_id": "b"}, {"dataset_hash": "d1"},
                                              {"tokenizer_hash": "t1"}, {"temperature": 2.0})}
    assert len(digests) == 6
    a = S.dataset_hash([[1, 2, 3], [4, 5]])
    assert a == S.dataset_hash([(1, 2, 3), (4, 5)])
    assert a != S.dataset_hash([[1, 2], [3, 4, 5]]) and a != S.dataset_hash([[4, 5], [1, 2, 3]])
    with pytest.raises(UserError, match="top_k"):
        _key(k=0)


def test_tokenizer_hash_follows_the_definition(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    def train(text, vocab):
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel()
        tok.train_from_iterator([text] * 20, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>"]))
        return PreTrainedTokenizerFast(tokenizer_object=tok)

    a = train("1m 2m 3m east wind pon chi", 280)
    a.save_pretrained(tmp_path / "a")
    same = PreTrainedTokenizerFast.from_pretrained(tmp_path / "a")
    assert S.tokenizer_hash(a) == S.tokenizer_hash(same)
    assert S.tokenizer_hash(a) != S.tokenizer_hash(train("completely different words here", 270))


def test_a_writer_that_finishes_second_discards_its_copy(tmp_path):
    store = S.TopKStore(str(tmp_path), _key())
    batches = _batches()
    slow = store.writer(V)
    slow.add(*batches[0])
    assert store.write(batches, vocab_size=V) is True  # a faster writer publishes meanwhile
    assert slow.close() is False
    assert not fsspec.filesystem("file").exists(slow.dir)
    _assert_matches(store.open(), _expected(batches))


def test_simultaneous_publishers_on_local_disk_leave_exactly_one_copy(tmp_path, monkeypatch):
    store = S.TopKStore(str(tmp_path), _key())
    a, b = store.writer(V), store.writer(V)
    for w in (a, b):
        w.add(*_batches()[0])
    monkeypatch.setattr(S.TopKStore, "exists", lambda self: False)  # both pass the check together
    assert a.close() is True and b.close() is False  # link() lets only the first create the marker
    monkeypatch.undo()
    entries = sorted(os.listdir(tmp_path / "topk" / store.key.digest()))
    assert entries == sorted([S.MARKER, a.name])  # no second copy, no temp marker
    assert store.open().meta["data"] == a.name


def test_failed_writer_publishes_nothing(tmp_path):
    store = S.TopKStore(str(tmp_path), _key())

    def broken():
        yield _batches()[0]
        raise RuntimeError("teacher crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        store.write(broken(), vocab_size=V)
    assert not store.exists()
    assert os.listdir(tmp_path / "topk" / store.key.digest()) == []


def _write_in_process(root, barrier, seed):
    torch.set_num_threads(1)
    store = S.TopKStore(root, _key())
    batches = _batches(seed)
    barrier.wait()
    store.write(batches, vocab_size=V)


def test_two_processes_writing_the_same_key_leave_one_valid_store(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_in_process, args=(str(tmp_path), barrier, 0)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = S.TopKStore(str(tmp_path), _key())
    reader = store.open()
    _assert_matches(reader, _expected(_batches(0)))
    entries = os.listdir(tmp_path / "topk" / store.key.digest())
    assert S.MARKER in entries and not [e for e in entries if ".tmp-" in e]
    assert len([e for e in entries if e.startswith("w-")]) == 1  # the loser removed its copy


def test_kd_from_the_store_matches_full_kd_at_large_k(tmp_path):
    g = torch.Generator().manual_seed(3)
    B, T, H = 2, 6, 8
    teacher = 2 * torch.randn(B, T, V, generator=g)
    h = torch.randn(B, T, H, generator=g, requires_grad=True)
    W = torch.randn(V, H, generator=g, requires_grad=True)
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[1, -2:] = -100
    full = kd_loss(h @ W.T, teacher, labels, temperature=2.0).detach()
    for k, tol in ((V, 2e-3), (64, None)):
        store = S.TopKStore(str(tmp_path), _key(k=k, temperature=2.0))
        store.write([(teacher, None)], vocab_size=V)
        rows = store.open().read_batch([0, 1])
        sparse = topk_kd_loss(h @ W.T, rows.ids, rows.logprobs, labels, rows.tail, temperature=2.0).detach()
        chunked = ChunkedDistillLoss(temperature=2.0, kd_weight=1.0, chunk_size=5)(h, W, labels,
                                                                                  teacher_topk=rows.as_tuple())
        assert torch.allclose(chunked["loss"].detach(), sparse, atol=1e-5)
        if tol is not None:  # k = V: only fp16 rounding separates it from the full KL
            assert float(sparse) == pytest.approx(float(full), rel=tol)
        else:
            assert 0 < float(sparse) < float(full) * (1 + 1e-3)
