"""Token-level KD from a black-box teacher's top-k logprobs: token mapping, alignment, one-hot rows,
the loss against the plain reference, and a whole run against the project's own OpenAI-compatible server."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stratos.distill.blackbox_kd import FILL, TokenIds, align, attach_teacher_topk
from stratos.distill.examples import ExampleDataset, TextExample, collate
from stratos.distill.losses import ChunkedDistillLoss, ce_loss, topk_kd_loss
from stratos.models.tokenizer import train_tokenizer
from stratos.models.textstream import token_bytes_fn

TEXTS = [f"Hand: 1m 2m 3m {n}p {n}p\nAnswer: {n}p and 4m" for n in range(1, 10)] * 4
TOK = train_tokenizer(TEXTS, 300)
RATIONALE = "Answer: 5p and 4m"


def server_tokens(text: str, lead: str = "", k: int = 3, with_bytes: bool = True):
    """(tokens, top) as an OpenAI-compatible server reports them for `lead + text`: each step's
    chosen token first in its top-k with p = 0.6, then two alternatives 0.2 and 0.1."""
    as_bytes = token_bytes_fn(TOK)
    ids = TOK(lead + text, add_special_tokens=False)["input_ids"]

    def entry(i, lp):
        return (TOK.decode([i]), lp, as_bytes(i) if with_bytes else None)
    tokens = [entry(i, math.log(0.6)) for i in ids]
    top = [[entry(i, math.log(0.6)), entry((i + 1) % 250 + 3, math.log(0.2)), entry((i + 2) % 250 + 3, math.log(0.1))][:k]
           for i in ids]
    return tokens, top


def test_token_ids_by_bytes_by_vllm_token_id_and_by_text():
    ids = TokenIds(TOK)
    i = TOK(" 5p", add_special_tokens=False)["input_ids"][0]
    assert ids(TOK.decode([i]), token_bytes_fn(TOK)(i)) == i
    assert ids(f"token_id:{i}", None) == i and ids("token_id:99999", None) is None
    assert ids(TOK.decode([i]), None) == i
    assert ids("never-a-token", None) is None and ids("x", [0xFF, 0xFE, 0xFD]) is None


def test_align_keeps_the_teachers_ids_strips_whitespace_and_puts_unknown_mass_in_the_tail():
    tokens, top = server_tokens(RATIONALE, lead=" \n")
    want = TOK(RATIONALE, add_special_tokens=False)["input_ids"]
    n_lead = len(tokens) - len(want)
    assert n_lead >= 1  # the whitespace-only lead is its own token here, dropped by align
    top[n_lead][2] = ("unknown-token", math.log(0.1), None)  # an alternative the student's vocab lacks
    got, unmapped = align(TOK, TokenIds(TOK), RATIONALE, tokens, top, k=3)
    assert unmapped == 0 and got.target_ids == want
    assert got.ids.shape == (len(want), 3) and got.ids[:, 0].tolist() == want
    assert got.tail[1].item() == pytest.approx(math.log(1 - 0.9), rel=1e-5)
    # the damaged step: its unknown entry is a FILL pad and its mass went to the tail
    assert got.logprobs[0, 2].item() == FILL and got.tail[0].item() == pytest.approx(math.log(0.2), rel=1e-5)
    assert len(set(got.ids[0].tolist())) == 3  # padding ids are distinct from the kept ones


def test_align_fails_on_unknown_chosen_tokens_or_other_text():
    tokens, top = server_tokens(RATIONALE)
    bad = [("unknown-token", -0.1, None)] + tokens[1:]
    assert align(TOK, TokenIds(TOK), RATIONALE, bad, top, 3) == (None, 1)
    assert align(TOK, TokenIds(TOK), "Answer: 6p", tokens, top, 3) == (None, 0)


def test_attach_uses_token_kd_or_refuses_with_the_reason():
    good = [TextExample("q", RATIONALE, server_tokens(RATIONALE)) for _ in range(10)]
    rep = attach_teacher_topk(TOK, good, k=3)
    assert rep.used and rep.aligned == 10 and all(e.teacher_topk is not None for e in good)
    assert rep.tail_mass_mean == pytest.approx(0.1, abs=1e-3)
    other_vocab = [TextExample("q", RATIONALE, ([("▁Answer", -0.1, None)], [[("▁Answer", -0.1, None)]]))
                   for _ in range(10)]
    rep = attach_teacher_topk(TOK, other_vocab, k=3)
    assert not rep.used and "refused" in rep.reason and all(e.teacher_topk is None for e in other_vocab)
    assert not attach_teacher_topk(TOK, [TextExample("q", RATIONALE)], k=3).used  # no logprobs at all
    assert "blackbox_kd=false" in attach_teacher_topk(TOK, good, k=3, enabled=False).reason


def test_kd_on_aligned_rows_is_the_reference_and_one_hot_rows_are_ce():
    ex = [TextExample("1m 2m", RATIONALE, server_tokens(RATIONALE)), TextExample("3p", "Answer: 9p and 4m")]
    attach_teacher_topk(TOK, ex, k=3)  # the second has no logprobs: CE only, via a one-hot teacher
    ds = ExampleDataset(TOK, ex, [], 0.0, 64, 0)
    assert ds.topk_k == 3
    batch = collate(TOK.pad_token_id, ds.topk_k)([ds[0], ds[1]])
    torch.manual_seed(0)
    H, V = 16, len(TOK)
    hidden = torch.randn(2, batch["input_ids"].shape[1] - 1, H, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, H, dtype=torch.float64)
    labels = batch["labels"][:, 1:]
    top = tuple(batch[k][:, :-1] for k in ("topk_ids", "topk_logprobs", "topk_tail"))
    out = ChunkedDistillLoss(kd_weight=0.5, temperature=1.0)(hidden, weight, labels, teacher_topk=top)
    logits = hidden @ weight.T
    want = topk_kd_loss(logits, *top[:2], labels, top[2], temperature=1.0)
    assert out["kd"].item() == pytest.approx(want.item(), rel=1e-6)
    # the row without a teacher answer: KD == CE exactly
    one = ChunkedDistillLoss(kd_weight=1.0, temperature=1.0)(hidden[1:], weight, labels[1:],
                                                             teacher_topk=tuple(x[1:] for x in top))
    assert one["kd"].item() == pytest.approx(ce_loss(logits[1:], labels[1:]).item(), rel=1e-6)


def test_sequence_kd_from_the_projects_own_server_uses_its_topk_logprobs(tmp_path, monkeypatch):
    """The whole path: stratos serve (OpenAI-compatible) as the black-box teacher with top_logprobs=4,
    a student on the served model's vocabulary, rationales as the teacher's ids, KD in the loss."""
    from stratos.checks import validate
    from tests.helpers.tiny_export import build_tiny_export
    from stratos.pipeline import run_pipeline
    from stratos.serve.engine import load_engine
    from stratos.serve.server import running
    from stratos.serve.settings import ServeSettings
    from tests.conftest import compose_cfg

    exp = build_tiny_export(str(tmp_path / "tiny"), heads=2, kv_heads=2)
    monkeypatch.setenv("STRATOS_TEST_KEY", "k")
    engine = load_engine(exp["hf"], "torch", threads=1)
    with running(engine, ServeSettings(port=0, api_key="k")) as url:
        cfg = compose_cfg(["+task=mahjong", "debug=fast", "task.n_train=24", "task.n_val=8", "task.n_test=8",
                           "task.curriculum=[]", "teacher=openai_endpoint", f"teacher.base_url={url}", "teacher.model=tiny",
                           "teacher.api_key_env=STRATOS_TEST_KEY", "teacher.top_logprobs=4", "teacher.max_new_tokens=16",
                           f"student.name_or_path={exp['hf']}", "strategy=alignment", "strategy.alignment.verify=false",
                           "trainer.max_steps=3", "trainer.batch_size=8", "trainer.val_every_n_steps=3",
                           "pipeline.stages=[data,distill]"], tmp_path)
        validate(cfg)
        done = run_pipeline(cfg, str(tmp_path / "run"))
    rep = json.loads((tmp_path / "run" / "distill" / "token_kd.json").read_text())
    assert rep["used"] and rep["k"] == 4 and rep["aligned"] == rep["rationales"] > 0, rep
    m = done["distill"].metrics
    assert m["strategy/mode"] == "sequence" and m["strategy/token_kd"] is True
    from stratos.distill.outputs import read_train_metrics

    logged = read_train_metrics(done["distill"])
    assert any(r.get("train/kd", 0) > 0 for r in logged), logged
