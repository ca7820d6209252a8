"""On-policy KD: the student's rollouts (stratos/distill/rollouts.py) and the loss the module puts on them.

Sampling is a pure function of (seed, step, rank): the global RNG neither moves it nor is moved by it, and a
run resumed from a checkpoint draws the samples an uninterrupted run draws.
"""

from __future__ import annotations

import pytest
import torch

from stratos.distill.losses import ChunkedDistillLoss, ce_loss, kd_loss
from stratos.distill.module import DistillModule
from stratos.distill.rollouts import on_policy_losses
from stratos.distill.rollouts import RolloutSampler, draw, prompt_lengths, rollout_seed, sample
from stratos.distill.trainer import build_trainer
from stratos.resilience.checkpoints import latest_checkpoint
from stratos.resilience.loader import ResumableLoader
from tests.distill.test_module import in_memory_teacher
from tests.distill.test_slices import LENGTHS, right_padded_batch, tiny_llama

EOS, PAD = 2, 0


def sampler(rate=1.0, **kw):
    return RolloutSampler(rate=rate, temperature=1.0, max_new_tokens=12, seed=7, pad_id=PAD, eos_id=EOS, **kw)


def test_sampling_depends_on_its_seed_alone_and_leaves_the_global_rng_alone():
    model = tiny_llama(seed=5)
    prompts = [[5, 6, 7], [9, 10], [11, 12, 13, 14]]
    torch.manual_seed(123)
    a = sample(model, prompts, max_new_tokens=10, temperature=1.0, seed=42, pad_id=PAD, eos_id=EOS)
    torch.manual_seed(999)  # another global state: same draw
    b = sample(model, prompts, max_new_tokens=10, temperature=1.0, seed=42, pad_id=PAD, eos_id=EOS)
    c = sample(model, prompts, max_new_tokens=10, temperature=1.0, seed=43, pad_id=PAD, eos_id=EOS)
    assert a == b and a != c
    torch.manual_seed(5)
    want = torch.rand(4)
    torch.manual_seed(5)
    sample(model, prompts, max_new_tokens=10, temperature=1.0, seed=1, pad_id=PAD, eos_id=EOS)
    assert torch.equal(torch.rand(4), want)  # the caller's RNG state is restored
    assert model.training  # train mode restored after sampling in eval mode
    for row in a:
        assert 1 <= len(row) <= 10 and (EOS not in row or row.index(EOS) == len(row) - 1)


def tiny_gpt2(seed=5):  # absolute position embeddings: wrong position ids under left padding would show
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=48, n_embd=32, n_layer=2, n_head=2, n_positions=64))


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_greedy_limit_low_temperature_matches_greedy_generation_row_by_row(build):
    """Left padding and the KV cache change nothing: each row equals HF's greedy decoding of its prompt alone."""
    model = build(seed=5).eval()
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15], [20]]
    got = sample(model, prompts, max_new_tokens=8, temperature=1e-4, seed=0, pad_id=PAD, eos_id=EOS)
    for p, row in zip(prompts, got):
        ids = torch.tensor([p])
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                           pad_token_id=PAD, eos_token_id=EOS)[0, len(p):].tolist()
        assert row == (g[: g.index(EOS) + 1] if EOS in g else g)


@pytest.mark.parametrize("temperature,block", [(1.0, 0), (0.5, 0), (3.0, 0), (1.0, 3), (0.5, 2)])
def test_draw_follows_the_softmax_distribution(temperature, block):
    """Chi-square of 60,000 draws per distribution against softmax(z / T), in one level (block 0 at V = 8) and in
    two (blocks of 3: the last one padded; of 2). Seeded, hence deterministic: the bound is the 1e-4 tail of
    chi-square with 7 degrees of freedom (27.9 at p = 1e-4 would fail 1 seed in 10^4)."""
    z = torch.tensor([[2.0, 0.5, -1.0, 0.0, 1.0, -3.0, 0.3, 1.5],
                      [0.0] * 8,
                      [5.0, -2.0, 4.0, -8.0, 0.0, 3.0, -1.0, 1.0]])  # (3, V = 8)
    n = 60_000
    tok = draw(z.repeat_interleave(n, 0), temperature, torch.Generator().manual_seed(11), block)  # (3 n, 1)
    assert tok.shape == (3 * n, 1) and tok.dtype == torch.long
    want = torch.softmax(z.double() / temperature, -1) * n  # (3, V) expected counts
    for r in range(3):
        got = torch.bincount(tok[r * n:(r + 1) * n, 0], minlength=8).double()
        chi2 = float(((got - want[r]) ** 2 / want[r]).sum())
        assert chi2 < 27.9, (r, chi2, got.tolist())


@pytest.mark.parametrize("block", [0, 2, 3])
def test_draw_never_takes_a_token_without_mass_and_refuses_nan(monkeypatch, block):
    """One level and two (blocks of 2: the second row's first block has no mass; of 3: the padding has none)."""
    z = torch.tensor([[float("-inf"), 0.0, 1.0, float("-inf")], [float("-inf"), float("-inf"), 2.0, float("-inf")]])
    tok = draw(z.repeat(5000, 1), 1.0, torch.Generator().manual_seed(0), block)[:, 0]
    assert set(tok[0::2].tolist()) == {1, 2} and set(tok[1::2].tolist()) == {2}
    assert (draw(z, 1e-4, torch.Generator().manual_seed(0), block)[:, 0] == 2).all()  # greedy limit
    # u = 1 exactly (a bound the generator never reaches) still lands on the last token with mass, not on V - 1
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.ones(shape, dtype=torch.float64))
    assert draw(z, 1.0, torch.Generator(), block)[:, 0].tolist() == [2, 2]
    monkeypatch.undo()
    for bad in ([[0.0, float("nan")]], [[0.0, float("inf")]], [[float("-inf")] * 2]):
        with pytest.raises(ValueError, match="NaN"):
            draw(torch.tensor(bad), 1.0, torch.Generator(), block)


def test_a_large_vocabulary_draws_in_two_levels_from_the_same_distribution():
    """V = 5,000 (>= TWO_LEVEL_FROM: blocks of BLOCK, the last one padded): the mass sits on 6 tokens spread over
    first, middle and last blocks; 60,000 draws against softmax, the 1e-4 tail of chi-square with 5 d.o.f. (25.7)."""
    from stratos.distill.rollouts import BLOCK, TWO_LEVEL_FROM

    V = 5000
    assert V >= TWO_LEVEL_FROM and V % BLOCK
    where = torch.tensor([0, BLOCK - 1, BLOCK, 2500, V - 2, V - 1])
    z = torch.full((1, V), float("-inf"))
    z[0, where] = torch.tensor([1.0, 0.0, 2.0, -1.0, 0.5, 1.5])
    n = 60_000
    tok = draw(z.expand(n, V), 1.0, torch.Generator().manual_seed(5))[:, 0]
    got = torch.bincount(tok, minlength=V).double()
    assert got.sum() == got[where].sum() == n  # never a token without mass
    want = torch.softmax(z[0, where].double(), -1) * n
    assert float(((got[where] - want) ** 2 / want).sum()) < 25.7


class Spy(torch.nn.Module):
    """A causal LM that records each forward's input width, `logits_to_keep` and logits shape; `eos_after`: from
    that forward on, <eos> gets all the mass (every row then ends)."""

    def __init__(self, model, eos_after=None):
        super().__init__()
        self.model, self.eos_after, self.calls = model, eos_after, []

    def forward(self, **kw):
        out = self.model(**kw)
        self.calls.append((tuple(kw["input_ids"].shape), kw.get("logits_to_keep"), tuple(out.logits.shape)))
        if self.eos_after is not None and len(self.calls) > self.eos_after:
            out.logits[..., EOS] = 1e4
        return out


def test_prefill_and_steps_compute_only_the_last_positions_logits():
    spy = Spy(tiny_llama(seed=5))
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13], [20]]
    sample(spy, prompts, max_new_tokens=4, temperature=1.0, seed=0, pad_id=PAD, eos_id=EOS)
    assert spy.calls[0] == ((3, 5), 1, (3, 1, 48))  # prefill: (B, T_p) in, (B, 1, V) logits out
    assert all(c == ((3, 1), 1, (3, 1, 48)) for c in spy.calls[1:]) and len(spy.calls) <= 4


def test_sampling_stops_once_every_row_has_emitted_eos():
    spy = Spy(tiny_llama(seed=5), eos_after=2)  # forwards 1-2 sample freely, the third's logits give <eos>
    got = sample(spy, [[5, 6, 7], [9, 10]], max_new_tokens=50, temperature=1.0, seed=0, pad_id=PAD, eos_id=EOS)
    assert len(spy.calls) <= 3 and all(row[-1] == EOS and len(row) <= 3 for row in got)


def test_rows_are_chosen_by_seed_and_step_and_corpus_rows_never():
    batch = right_padded_batch(LENGTHS)
    s = sampler(rate=0.5)
    picks = [s.choose(batch, step) for step in range(20)]
    assert all(torch.equal(p, s.choose(batch, i)) for i, p in enumerate(picks))
    share = torch.stack(picks).float().mean().item()
    assert 0.3 < share < 0.7 and len({tuple(p.tolist()) for p in picks}) > 5
    batch["is_corpus"] = torch.ones(len(LENGTHS), dtype=torch.bool)
    assert not sampler(rate=1.0).choose(batch, 0).any()
    assert rollout_seed(0, 1) != rollout_seed(0, 2) != rollout_seed(1, 1) and rollout_seed(0, 1, 1) != rollout_seed(0, 1)


def test_rollout_rows_keep_their_prompt_and_train_on_the_sample_only():
    model = tiny_llama(seed=5)
    batch = right_padded_batch(LENGTHS)
    n_prompt = prompt_lengths(batch["labels"], batch["attention_mask"])
    s = sampler(rate=0.5)
    out = s(model, batch, step=3)
    pick = out["on_policy"]
    assert pick.any() and not pick.all()
    for r in range(len(LENGTHS)):
        n = int(out["attention_mask"][r].sum())
        ids, labels = out["input_ids"][r, :n], out["labels"][r, :n]
        p = n_prompt[r]
        assert torch.equal(ids[:p], batch["input_ids"][r, :p])  # same prompt
        assert (out["labels"][r, n:] == -100).all() and (out["input_ids"][r, n:] == PAD).all()  # right-padded
        if pick[r]:
            assert (labels[:p] == -100).all() and torch.equal(labels[p:], ids[p:]) and 1 <= n - p <= 12
        else:
            assert n == LENGTHS[r] and torch.equal(labels, batch["labels"][r, :n])
    assert s.stats.rows == int(pick.sum()) and s.stats.sampled_tokens == int((out["labels"][pick] != -100).sum())
    assert s.stats.tokens_per_s > 0
    again = sampler(rate=0.5)(model, batch, step=3)
    assert all(torch.equal(out[k], again[k]) for k in ("input_ids", "labels", "on_policy"))


def test_the_verifier_row_is_the_prompt_plus_the_judged_text():
    from stratos.models.tokenizer import train_tokenizer

    tok = train_tokenizer(["1m: 111m 23m\nAnswer: 1m 4m", "Hand: 1m 2m 3m\nWinning tiles?"] * 20, 300)
    model = tiny_llama(seed=5)
    model.resize_token_embeddings(len(tok))
    seen = []

    def judge(index, text):
        seen.append((index, text))
        return "1m: 111m 23m\nAnswer: 1m", 1, 2, False

    s = RolloutSampler(rate=1.0, temperature=1.0, max_new_tokens=6, seed=0, pad_id=tok.pad_token_id,
                       eos_id=tok.eos_token_id, scorer="verifier", tokenizer=tok, judge=judge)
    prompt = [tok.bos_token_id] + tok("Hand: 1m 2m 3m\nWinning tiles?\n", add_special_tokens=False)["input_ids"]
    tgt = tok("Answer: none", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([prompt + tgt])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "labels": torch.tensor([[-100] * len(prompt) + tgt]), "index": torch.tensor([17])}
    out = s(model, batch, step=0)
    fixed = tok("1m: 111m 23m\nAnswer: 1m", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert out["input_ids"][0].tolist() == prompt + fixed
    assert out["labels"][0].tolist() == [-100] * len(prompt) + fixed
    assert [i for i, _ in seen] == [17] and (s.stats.lines_ok, s.stats.lines) == (1, 2)


def test_a_rollout_the_server_fails_on_goes_back_to_its_data_row():
    """scorer logprobs: the server's rows land on the sampled positions; a failed row trains as its data row."""
    class Server:  # served_scores.ServedScores' interface: rows (m, k), or None where the server failed
        width = 3

        def __call__(self, seqs, starts):
            self.starts = starts
            return [None if r == 0 else (torch.tensor([[5, 6, 7]] * (len(x) - s)), torch.full((len(x) - s, 3), -2.0),
                                         torch.full((len(x) - s,), -1.0)) for r, (x, s) in enumerate(zip(seqs, starts))]

    model = tiny_llama(seed=5)
    batch = right_padded_batch(LENGTHS)
    s = sampler(rate=1.0, scorer="logprobs", scores=Server())
    out = s(model, batch, step=0)
    assert not out["on_policy"][0] and out["on_policy"][1:].all()
    assert torch.equal(out["input_ids"][0, : LENGTHS[0]], batch["input_ids"][0, : LENGTHS[0]])
    assert s.stats.score_failed == 1 and s.stats.rows == len(LENGTHS) - 1
    assert out["topk_ids"].shape == (*out["input_ids"].shape, 3)
    for r in range(1, len(LENGTHS)):
        p, n = s.scores.starts[r], int(out["attention_mask"][r].sum())
        assert out["topk_tail"][r, p - 1: n - 1].eq(-1.0).all() and out["topk_ids"][r, p - 1].tolist() == [5, 6, 7]
        assert out["topk_tail"][r, : p - 1].eq(0).all()  # prompt positions: not supervised
    first = out["labels"][0, 1:] != -100  # the failed row: a one-hot teacher at its labels (CE)
    assert torch.equal(out["topk_ids"][0, :-1][first][:, 0], out["labels"][0, 1:][first])
    metrics = s.stats.as_metrics()
    assert metrics["on_policy/score_failed"] == 1 and metrics["on_policy/scored_tokens"] == s.stats.scored_tokens > 0


def test_on_policy_loss_is_one_token_mean_kd_alone_on_rollout_rows():
    """(sum over data tokens of (1-w) CE + w KD + sum over rollout tokens of KD) / all tokens, vs full logits."""
    torch.manual_seed(0)
    B, T, H, V = 4, 9, 16, 40
    h = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, H, dtype=torch.float64) * 0.3
    t_logits = torch.randn(B, T, V, dtype=torch.float64)
    labels = torch.randint(0, V, (B, T))
    labels[:, :2] = -100
    rolled = torch.tensor([True, False, True, False])
    w, temp = 0.3, 2.0
    data_fn = ChunkedDistillLoss(kd_weight=w, temperature=temp, chunk_size=5)
    roll_fn = ChunkedDistillLoss(kd_weight=1.0, temperature=temp, chunk_size=5)
    out = on_policy_losses(data_fn, roll_fn, h, W, labels, rolled, {"teacher_logits": t_logits})
    z = h @ W.T
    n = int((labels != -100).sum())
    dl, rl = labels.clone(), labels.clone()
    dl[rolled], rl[~rolled] = -100, -100
    want = ((1 - w) * ce_loss(z, dl, n) + w * kd_loss(z, t_logits, dl, temperature=temp, num_items=n)
            + kd_loss(z, t_logits, rl, temperature=temp, num_items=n))
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-9)
    g_want, = torch.autograd.grad(want, h)
    g_got, = torch.autograd.grad(out["loss"], h)
    assert torch.allclose(g_got, g_want, atol=1e-10)
    n_roll = int((rl != -100).sum())
    assert out["rollout_kd"].item() == pytest.approx(kd_loss(z, t_logits, rl, temperature=temp).item(), rel=1e-9)
    assert n_roll > 0


def test_on_policy_loss_at_rate_one_calls_only_the_rollout_loss():
    """Every row rolled out: the data part (no tokens) is skipped, the result is the rollout loss alone."""
    torch.manual_seed(0)
    B, T, H, V = 3, 7, 8, 30
    h = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, H, dtype=torch.float64) * 0.3
    t_logits = torch.randn(B, T, V, dtype=torch.float64)
    labels = torch.randint(0, V, (B, T))
    labels[:, :2] = -100
    roll_fn = ChunkedDistillLoss(kd_weight=1.0, chunk_size=4)

    def data_fn(*a, **kw):
        raise AssertionError("the data part has no tokens")

    out = on_policy_losses(data_fn, roll_fn, h, W, labels, torch.ones(B, dtype=torch.bool), {"teacher_logits": t_logits})
    want = roll_fn(h, W, labels, teacher_logits=t_logits)
    assert out["loss"].item() == pytest.approx(want["loss"].item(), rel=1e-12) and out["loss"].dtype == torch.float64
    assert out["rollout_kd"].item() == pytest.approx(want["kd"].item(), rel=1e-12) and out["ce"].item() == 0
    g_got, = torch.autograd.grad(out["loss"], h)
    g_want, = torch.autograd.grad(want["loss"], h)
    assert torch.allclose(g_got, g_want, atol=1e-12)


def test_module_scores_rollouts_with_the_teacher_even_at_kd_weight_zero():
    teacher = in_memory_teacher()
    student = tiny_llama(seed=5)
    module = DistillModule(student, "logit", {"kd_weight": 0.0, "temperature": 1.0}, 1e-3, 0.0, 1, 10,
                           teacher=teacher, on_policy=sampler(rate=1.0))
    batch = right_padded_batch(LENGTHS)
    batch.update(module.on_policy(student, batch, 0))
    out = module.losses(batch)
    assert out["rollout_kd"] > 0 and out["loss"].item() == pytest.approx(out["kd"].item())  # no data rows: KD only


class Recording(RolloutSampler):
    """Keeps every step's rollout rows (ids) to compare runs."""

    def __call__(self, model, batch, step):
        out = super().__call__(model, batch, step)
        self.seen = getattr(self, "seen", {})
        self.seen[step] = out["input_ids"][out["on_policy"]].tolist()
        return out


def _fit(tmp_path, max_steps, torch_seed):
    torch.manual_seed(0)
    data = [(b["input_ids"][r, : LENGTHS[r]].tolist(), b["labels"][r, : LENGTHS[r]].tolist())
            for b in [right_padded_batch(LENGTHS)] for r in range(len(LENGTHS))]
    from stratos.distill.examples import ExampleDataset, collate

    ds = ExampleDataset.from_items(data)
    rec = Recording(rate=0.5, temperature=1.0, max_new_tokens=6, seed=3, pad_id=PAD, eos_id=EOS)
    module = DistillModule(tiny_llama(seed=5), "logit", {"kd_weight": 0.5}, 1e-2, 0.0, 1, 6,
                           teacher=in_memory_teacher(), on_policy=rec)
    trainer, _ = build_trainer(ckpt_dir=str(tmp_path), accelerator="cpu", devices=1, distributed="auto",
                               precision="32-true", max_steps=max_steps, max_minutes=0, val_every_n_steps=1000,
                               checkpoint_every_n_steps=2, grad_clip=1.0, progress_bar=False)
    loader = ResumableLoader(ds, 4, shuffle=True, seed=0, drop_last=True, collate_fn=collate(PAD))
    torch.manual_seed(torch_seed)  # the global RNG differs between launches: the samples must not
    trainer.fit(module, loader, ckpt_path=latest_checkpoint(str(tmp_path)))
    return rec.seen


def test_a_resumed_run_draws_the_samples_of_an_uninterrupted_one(tmp_path):
    whole = _fit(tmp_path / "a", 5, torch_seed=1)
    first = _fit(tmp_path / "b", 2, torch_seed=2)
    resumed = _fit(tmp_path / "b", 5, torch_seed=3)  # from step_000002.ckpt
    assert sorted(whole) == [0, 1, 2, 3, 4] and sorted(first) == [0, 1] and sorted(resumed) == [2, 3, 4]
    assert {**first, **resumed} == whole
    assert sum(len(v) for v in whole.values()) > 0
