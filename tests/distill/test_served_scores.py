"""On-policy KD scored by a served teacher (stratos/distill/served_scores.py): the server's top-k rows of the
student's samples, mapped onto the student's vocabulary, and the loss they give.

The key identity: with k = V the top-k rows hold the teacher's whole distribution, so rollouts scored by
`python -m stratos.serve` over HTTP (vLLM's prompt_logprobs shape, keyed by token id) give the loss the live
white-box teacher gives on the same samples. The echo shape keys tokens by text: at k = V its rows are those same
rows except that tokens sharing a text (byte pieces of one character, all decoded as U+FFFD) cannot be told apart
and give their mass to the tail."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from stratos.distill.blackbox_kd import FILL
from stratos.distill.module import DistillModule
from stratos.distill.rollouts import RolloutSampler
from stratos.distill.served_scores import ServedScores, rollout_topk, widen
from stratos.errors import UserError
from stratos.export.hf import load_tokenizer
from stratos.models.openai_scoring import ScoredSequence
from stratos.models.openai_teacher import OpenAITeacher
from stratos.models.teacher import HFTeacher
from stratos.serve.engine import load_engine
from stratos.serve.server import running
from stratos.serve.settings import ServeSettings
from tests.distill.test_slices import LENGTHS, right_padded_batch


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tok(tiny_export):
    return load_tokenizer(tiny_export["hf"])


@pytest.fixture(scope="module")
def server(tiny_export, tok):
    """stratos.serve of the tiny teacher (torch backend), allowed k = V."""
    engine = load_engine(tiny_export["hf"], "torch", threads=1)
    with running(engine, ServeSettings(port=0, max_logprobs=len(tok))) as url:
        yield url


def served_teacher(url, api, k, **kw) -> OpenAITeacher:
    return OpenAITeacher(name="served", base_url=url, model="tiny", api_key_env="", score_api=api,
                         score_top_logprobs=k, concurrency=4, max_retries=1, backoff_base_s=0.01,
                         backoff_max_s=0.02, **kw)


def live_teacher(tiny_export) -> HFTeacher:
    teacher = HFTeacher.__new__(HFTeacher)  # the real class around the served checkpoint, loaded in memory
    teacher.model = AutoModelForCausalLM.from_pretrained(tiny_export["hf"]).eval()
    for p in teacher.model.parameters():
        p.requires_grad_(False)
    return teacher


def student(vocab: int, seed: int = 5):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                                        tie_word_embeddings=True))


def sampler(tok, **kw) -> RolloutSampler:
    return RolloutSampler(rate=0.5, temperature=1.0, max_new_tokens=10, seed=11, pad_id=tok.pad_token_id,
                          eos_id=tok.eos_token_id, **kw)


def test_served_rollouts_at_k_equal_v_give_the_live_teachers_loss(server, tok, tiny_export):
    """Same samples (same seed and step), the live teacher's logits vs the server's top-V log-probs: one loss.
    kd_weight 0: data rows CE in both (sequence KD without token KD), rollout rows KD at T = 1."""
    V = len(tok)
    batch = right_padded_batch(LENGTHS, vocab=V)
    al = {"kd_weight": 0.0, "temperature": 1.0, "loss": "forward_kl"}
    s = student(V)
    live = DistillModule(s, "logit", al, 1e-3, 0.0, 1, 10, teacher=live_teacher(tiny_export),
                         on_policy=sampler(tok, scorer="logits"))
    scores = ServedScores(served_teacher(server, "prompt_logprobs", V), tok)
    served = DistillModule(s, "sequence", al, 1e-3, 0.0, 1, 10, on_policy=sampler(tok, scorer="logprobs",
                                                                                  scores=scores))
    b_live, b_served = dict(batch), dict(batch)
    b_live.update(live.on_policy(s, batch, 3))
    b_served.update(served.on_policy(s, batch, 3))
    assert torch.equal(b_live["input_ids"], b_served["input_ids"])  # the same samples
    rolled = b_served["on_policy"]
    assert rolled.any() and not rolled.all()
    sampled = torch.zeros_like(b_served["labels"], dtype=torch.bool)
    sampled[:, :-1] = b_served["labels"][:, 1:] != -100  # the rows that predict a sampled token
    assert b_served["topk_ids"].shape[-1] == V and (b_served["topk_tail"][sampled & rolled[:, None]].exp() == 0).all()
    got, want = served.losses(b_served), live.losses(b_live)
    assert got["rollout_kd"].item() == pytest.approx(want["rollout_kd"].item(), rel=1e-4)
    assert got["ce"].item() == pytest.approx(want["ce"].item(), rel=1e-5)
    assert got["loss"].item() == pytest.approx(want["loss"].item(), rel=1e-4)
    g_got = torch.autograd.grad(got["loss"], s.lm_head.weight)[0]
    g_want = torch.autograd.grad(want["loss"], s.lm_head.weight)[0]
    assert torch.allclose(g_got, g_want, atol=1e-5)
    st = served.on_policy.stats
    assert st.scored_tokens == int((b_served["labels"][rolled] != -100).sum()) and st.score_seconds > 0
    assert st.as_metrics()["on_policy/scored_tokens_per_s"] > 0 and st.score_failed == 0
    assert scores.teacher.score_stats.sequences == int(rolled.sum())  # one request per rollout


def test_echo_rows_are_the_id_rows_less_the_tokens_text_cannot_tell_apart(server, tok):
    V = len(tok)
    batch = right_padded_batch(LENGTHS, vocab=V)
    by_id = ServedScores(served_teacher(server, "prompt_logprobs", V), tok)
    by_text = ServedScores(served_teacher(server, "echo", V), tok)
    seqs = [batch["input_ids"][r, :n].tolist() for r, n in enumerate(LENGTHS[:3])]
    ambiguous = {i for i in range(V) if tok.decode([i]) in by_text.token_ids.ambiguous}
    assert len(ambiguous) > 50  # byte tokens of a byte-level BPE trained on ASCII text
    for seq, (ids_v, lp_v, _), (ids_t, lp_t, tail_t) in zip(seqs, by_id(seqs, [5] * 3), by_text(seqs, [5] * 3)):
        for r in range(len(tail_t)):
            given = seq[5 + r]
            want = {i: v for i, v in zip(ids_v[r].tolist(), lp_v[r].tolist()) if i not in ambiguous or i == given}
            got = {i: v for i, v in zip(ids_t[r].tolist(), lp_t[r].tolist()) if v > FILL}
            assert got.keys() == want.keys() and all(got[i] == pytest.approx(want[i], abs=1e-9) for i in got)
            lost = sum(math.exp(v) for i, v in zip(ids_v[r].tolist(), lp_v[r].tolist()) if i not in want)
            assert math.exp(tail_t[r].item()) == pytest.approx(lost, abs=1e-5)


def test_a_small_k_keeps_the_top_entries_and_the_rest_in_the_tail(server, tok):
    V, k = len(tok), 3
    batch = right_padded_batch(LENGTHS, vocab=V)
    full = ServedScores(served_teacher(server, "prompt_logprobs", V), tok)
    small = ServedScores(served_teacher(server, "echo", k), tok)
    seqs = [batch["input_ids"][r, :n].tolist() for r, n in enumerate(LENGTHS[:3])]
    for (ids_v, lp_v, tail_v), (ids_k, lp_k, tail_k) in zip(full(seqs, [5] * 3), small(seqs, [5] * 3)):
        assert ids_k.shape[1] == k + 1 and torch.isinf(tail_v).all()
        for r in range(len(tail_k)):
            best = dict(zip(ids_v[r].tolist(), lp_v[r].tolist()))
            real = lp_k[r] > FILL  # the k best (some may share a text: tail) + the given token
            for i, v in zip(ids_k[r][real].tolist(), lp_k[r][real].tolist()):
                assert v == pytest.approx(best[i], abs=1e-6)
            mass = sum(math.exp(v) for v in lp_k[r][real].tolist())
            assert tail_k[r].item() == pytest.approx(math.log1p(-mass), abs=1e-5)


def test_entries_map_to_student_ids_and_unmapped_mass_goes_to_the_tail(tok):
    """echo entries by text: the given token by the id sent, token_id:N, special tokens; an unknown or
    ambiguous text maps to none."""
    teacher = type("T", (), {"score_top_logprobs": 5, "name": "t", "url": "u"})()
    s = ServedScores(teacher, tok)
    amb = next(iter(s.token_ids.ambiguous))  # a text several ids decode to
    a, b = 40, 41
    ta, tb = tok.decode([a]), tok.decode([b])
    eos = tok.decode([tok.eos_token_id])
    seq = ScoredSequence(ids=[1, a], texts=[None, ta], logprobs=[None, math.log(0.1)],
                         top=[None, [(tb, None, math.log(0.3)), ("no such token", None, math.log(0.2)),
                                     (amb, None, math.log(0.1)), (eos, None, math.log(0.05)),
                                     ("token_id:7", 7, math.log(0.04)), (ta, None, math.log(0.1))]])
    ids, lp, tail = s.rows(seq, 1)
    got = {i: round(math.exp(v), 6) for i, v in zip(ids[0].tolist(), lp[0].tolist()) if v > FILL}
    assert got == {b: 0.3, a: 0.1, tok.eos_token_id: 0.05, 7: 0.04}
    assert ids[0].tolist()[:4] == [b, a, tok.eos_token_id, 7]  # best first
    assert len(set(ids[0].tolist())) == ids.shape[1]  # FILL entries take distinct ids
    assert tail[0].item() == pytest.approx(math.log(1 - 0.49), abs=1e-6)  # unknown + ambiguous + rest


def test_another_tokenizer_is_refused_and_the_same_one_passes(server, tok):
    from stratos.models.tokenizer import train_tokenizer
    from tests.helpers.tiny_export import sample_texts

    rows = [tok("Hand: 1m 2m 3m 4p 5p 6s\nWhich tiles complete this hand?")["input_ids"]]
    assert ServedScores(served_teacher(server, "echo", 2), tok).check_vocab(rows)["matching_share"] == 1.0
    # the same size and byte alphabet (ids < 259 agree), other merges: text it has merged reads differently
    texts = [t[::-1] for t in sample_texts(seed=3)]
    other = train_tokenizer(texts, vocab_size=len(tok))
    with pytest.raises(UserError, match="invalid value for 'student.name_or_path'.*reads .* as other text"):
        ServedScores(served_teacher(server, "echo", 2), other).check_vocab([other(t)["input_ids"] for t in texts[:2]])


def test_data_rows_keep_their_rows_or_get_a_one_hot_teacher():
    ids = torch.tensor([[[3, 4], [5, 6]]])
    lp = torch.tensor([[[-0.1, -2.0], [-0.5, -1.0]]])
    wide_ids, wide_lp = widen(ids, lp, 4)
    assert wide_ids.shape == (1, 2, 4) and all(len(set(r)) == 4 for r in wide_ids[0].tolist())
    assert torch.equal(wide_lp[..., 2:], torch.full((1, 2, 2), FILL))
    rows = [([1, 2, 3, 4], [-100, -100, 3, 4]), ([1, 5, 6], [-100, 6, 7])]  # a rollout row and a data row
    scored = {0: (2, torch.tensor([[9, 8, 7], [1, 2, 3]]), torch.tensor([[-0.1, -3.0, -4.0], [-0.2, -2.0, -3.0]]),
                  torch.tensor([-5.0, -6.0]))}
    out = rollout_topk({"input_ids": torch.zeros(2, 3, dtype=torch.long)}, rows, scored, 3)
    assert out["topk_ids"].shape == (2, 4, 3)
    assert out["topk_ids"][0, 1].tolist() == [9, 8, 7] and out["topk_tail"][0, 2].item() == -6.0  # rows P-1, P
    assert out["topk_ids"][1, 0, 0].item() == 6 and out["topk_logprobs"][1, 0, 0].item() == 0.0  # one-hot label
    assert math.exp(out["topk_tail"][1, 0].item()) == 0 and out["topk_tail"][0, 0].item() == 0.0  # unread: tail
