"""The distill stage with a real white-box teacher: live logit KD, KD from the offline top-k store,
hidden-state KD and LoRA, through `run_pipeline` on a tiny Mahjong config.

The teacher is itself a Stratos student trained for a few steps here and saved with
`save_pretrained`, then loaded back by `teacher=tiny_teacher teacher.name_or_path=<dir>`.
"""

from __future__ import annotations

import json

import pytest
import torch

from stratos.checks import validate
from stratos.distill.examples import ExampleDataset, TextExample, WithIndex, collate
from stratos.distill.module import DistillModule
from stratos.distill.outputs import read_train_metrics
from stratos.distill.teacher_store import open_topk_store, teacher_fingerprint
from stratos.errors import UserError
from stratos.models.teacher import HFTeacher
from stratos.pipeline import run_pipeline
from tests.conftest import compose_cfg

SMALL = ["+task=mahjong", "debug=fast", "task.n_train=96", "task.n_val=16", "task.n_test=16", "trainer.max_steps=6",
         "trainer.batch_size=8", "trainer.val_every_n_steps=6", "trainer.checkpoint_every_n_steps=6"]


def run(tmp_path, overrides, name="run"):
    cfg = compose_cfg([*SMALL, *overrides], tmp_path)
    validate(cfg)
    run_dir = tmp_path / name
    done = run_pipeline(cfg, str(run_dir))
    return run_dir, done


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A tiny teacher: the default student recipe trained briefly on the task, saved as an HF checkpoint."""
    root = tmp_path_factory.mktemp("teacher")
    run_dir, _ = run(root, ["strategy=injection", "pipeline.stages=[data,distill]"])
    return str(run_dir / "distill" / "model")


def kd(teacher_dir, *extra):
    return ["teacher=tiny_teacher", f"teacher.name_or_path={teacher_dir}", "strategy=alignment",
            "pipeline.stages=[data,distill]", *extra]


def test_live_logit_kd_shares_the_teachers_tokenizer(tmp_path, teacher_dir):
    run_dir, done = run(tmp_path, kd(teacher_dir))
    strategy = json.loads((run_dir / "distill" / "strategy.json").read_text())
    preflight = json.loads((run_dir / "distill" / "preflight.json").read_text())
    assert strategy["mode"] == "logit" and not strategy["refused"]
    assert preflight["same_vocab"], preflight["vocab_reason"]  # tokenizer_from=auto took the teacher's
    logged = read_train_metrics(done["distill"])
    assert any("train/kd" in r and r["train/kd"] > 0 for r in logged)
    assert done["distill"].metrics["distill/steps"] == 6
    assert not (run_dir / "distill" / "topk_store.json").exists()


def test_a_student_with_its_own_tokenizer_gets_cross_tokenizer_logit_kd(tmp_path, teacher_dir):
    run_dir, done = run(tmp_path, kd(teacher_dir, "student.tokenizer_from=train", "student.tokenizer_vocab=320"))
    d = run_dir / "distill"
    strategy, preflight = (json.loads((d / f).read_text()) for f in ("strategy.json", "preflight.json"))
    assert strategy["mode"] == "cross_tokenizer" and not strategy["refused"]
    assert "cross-tokenizer logit KD" in strategy["reason"] and preflight["logit_kd"] == "cross-tokenizer logit KD"
    assert not preflight["same_vocab"] and preflight["shared_tokens"] > 250
    xtok = json.loads((d / "cross_tokenizer.json").read_text())
    assert xtok["student_vocab"] == 320 and xtok["train"]["aligned_share"] > 0.5, xtok
    assert done["distill"].metrics["strategy/xtok_aligned_share"] == xtok["train"]["aligned_share"]
    assert any(r.get("train/kd", 0) > 0 for r in read_train_metrics(done["distill"]))


def test_store_kd_writes_once_and_is_shared_across_seeds(tmp_path, teacher_dir):
    store = ["strategy.alignment.top_k=16"]
    run_dir, done = run(tmp_path, kd(teacher_dir, *store), "seed0")
    info = json.loads((run_dir / "distill" / "topk_store.json").read_text())
    assert info["train"]["written"] and info["train"]["bytes_per_token"] <= 16 * 4 + 2 + 8  # int16 + fp16 + tail
    assert done["distill"].metrics["distill/topk/written"] is True
    # another seed, same teacher and data: the store is read, not recomputed
    run_dir1, done1 = run(tmp_path, kd(teacher_dir, *store, "seed=1"), "seed1")
    info1 = json.loads((run_dir1 / "distill" / "topk_store.json").read_text())
    assert not info1["train"]["written"] and info1["train"]["url"] == info["train"]["url"]
    assert done1["distill"].metrics["distill/steps"] == 6
    # another k is another store
    run_dir2, _ = run(tmp_path, kd(teacher_dir, "strategy.alignment.top_k=8"), "k8")
    assert json.loads((run_dir2 / "distill" / "topk_store.json").read_text())["train"]["url"] != info["train"]["url"]


def test_hidden_state_kd_learns_a_projection(tmp_path, teacher_dir):
    run_dir, done = run(tmp_path, kd(teacher_dir, "strategy.alignment.mode=hidden", "student.arch.hidden=32",
                                     "student.arch.heads=2", "student.arch.kv_heads=2"))
    assert json.loads((run_dir / "distill" / "strategy.json").read_text())["mode"] == "hidden"
    logged = read_train_metrics(done["distill"])
    assert any("train/hidden_mse" in r for r in logged)


def test_lora_student_with_logit_kd_saves_adapter_and_merged_model(tmp_path, teacher_dir):
    run_dir, done = run(tmp_path, kd(teacher_dir, "student.peft.method=lora", "student.peft.r=4"))
    assert (run_dir / "distill" / "adapter" / "adapter_config.json").exists()
    m = done["distill"].metrics  # counted before merging: the adapter is what trained
    assert 0 < m["distill/trainable_params"] < m["distill/student_params"]
    assert (run_dir / "distill" / "model" / "config.json").exists()


@pytest.mark.parametrize("override, needle", [
    (["strategy.alignment.top_k=8", "strategy.alignment.loss=jsd"], "strategy.alignment.loss"),
    (["strategy.alignment.top_k=8", "strategy.alignment.mode=hidden"], "strategy.alignment.mode"),
    (["strategy.alignment.top_k=-1"], "strategy.alignment.top_k"),
])
def test_bad_store_settings_are_user_errors(tmp_path, override, needle):
    with pytest.raises(UserError, match=needle):
        validate(compose_cfg([*SMALL, *override], tmp_path))


def test_a_bad_tokenizer_source_is_refused_while_composing(tmp_path):
    from hydra.errors import ConfigCompositionException

    from stratos.errors import describe_config_error

    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg([*SMALL, "student.tokenizer_from=mine"], tmp_path)
    assert describe_config_error(e.value) == ("invalid value for 'student.tokenizer_from': 'mine' "
                                              "(allowed: auto, teacher, train)")


def _batch_and_modules(teacher_dir, k):
    teacher = HFTeacher("tiny_teacher", teacher_dir)
    tok = teacher.tokenizer
    examples = [TextExample(f"1m 2m 3m 4m 5m {n}p", f"Answer: {n}p") for n in range(1, 9)]
    ds = ExampleDataset(tok, examples, [], 0.0, 64, 0)
    batch = collate(tok.pad_token_id)([WithIndex(ds)[i] for i in (5, 0, 3, 7)])  # any order, right-padded
    torch.manual_seed(0)
    student = HFTeacher("s", teacher_dir).model.train()  # a student with the teacher's vocab
    for p in student.parameters():
        p.requires_grad_(True)
        p.data.add_(0.05 * torch.randn_like(p))
    align = {"kd_weight": 1.0, "temperature": 2.0}
    live = DistillModule(student, "logit", align, 1e-3, 0.0, 1, 10, teacher=teacher)
    return teacher, ds, batch, live, align


def test_store_loss_equals_live_loss_at_full_k_and_bounds_it_below(tmp_path, teacher_dir):
    """At k = V the stored top-k KD is the live KD (up to fp16 storage); at k < V it is a lower bound."""
    teacher, ds, batch, live, align = _batch_and_modules(teacher_dir, 0)
    V = teacher.model.get_output_embeddings().weight.shape[0]
    want = live.losses(batch)["kd"].item()
    losses = {}
    for k in (V, 8):
        reader, stats = open_topk_store(teacher, ds, cache_root=str(tmp_path), k=k, temperature=2.0,
                                        pad_id=teacher.tokenizer.pad_token_id, batch_size=3)
        stored = DistillModule(live.student, "logit", align, 1e-3, 0.0, 1, 10, topk={"train": reader})
        losses[k] = stored.losses(batch)["kd"].item()
    assert losses[V] == pytest.approx(want, rel=2e-3, abs=1e-4)
    assert losses[8] < want


def test_teacher_fingerprint_changes_with_the_weights(teacher_dir):
    teacher = HFTeacher("tiny_teacher", teacher_dir)
    before = teacher_fingerprint(teacher)
    assert teacher_fingerprint(HFTeacher("tiny_teacher", teacher_dir)) == before
    with torch.no_grad():
        next(teacher.model.parameters()).add_(1e-3)
    assert teacher_fingerprint(teacher) != before


def test_live_kd_from_teacher_hidden_states_equals_kd_from_teacher_logits(teacher_dir, monkeypatch):
    """The fused path (teacher hidden states x head, supervised rows only) is the logits path."""
    teacher, ds, batch, live, align = _batch_and_modules(teacher_dir, 0)
    assert teacher.plain_head
    fused = live.losses(batch)
    monkeypatch.setattr(HFTeacher, "plain_head", property(lambda self: False))  # force the (B, T, V) logits path
    full = live.losses(batch)
    assert fused["kd"].item() == pytest.approx(full["kd"].item(), rel=1e-5)
    assert fused["loss"].item() == pytest.approx(full["loss"].item(), rel=1e-5)


def test_injection_loss_gives_the_corpus_its_share_whatever_the_lengths(teacher_dir):
    """loss = (1 - w) * CE over SFT tokens + w * CE over corpus tokens, each a per-token mean."""
    from stratos.distill.module import shifted_ce

    tok = HFTeacher("tiny_teacher", teacher_dir).tokenizer
    student = HFTeacher("s", teacher_dir).model.train()
    sup = [TextExample(f"1m 2m 3m 4m 5m {n}p", f"Answer: {n}p") for n in range(1, 4)]
    corpus = [TextExample("", "A pung is three identical tiles. " * 6)]  # long rows: far more tokens than SFT
    ds = ExampleDataset(tok, sup, corpus, 0.4, 256, 0, corpus_window=48)
    batch = collate(tok.pad_token_id)(list(ds.items))
    assert batch["is_corpus"].sum() == ds.n_corpus == 2
    module = DistillModule(student, "injection", {}, 1e-3, 0.0, 1, 10, corpus_weight=0.4)
    out = module.losses(batch)
    logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels, cor = batch["labels"][:, 1:], batch["is_corpus"]
    sft_ce, cor_ce = shifted_ce(logits[~cor], labels[~cor]), shifted_ce(logits[cor], labels[cor])
    assert out["ce"].item() == pytest.approx(sft_ce.item(), rel=1e-5)
    assert out["corpus_ce"].item() == pytest.approx(cor_ce.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.6 * sft_ce.item() + 0.4 * cor_ce.item(), rel=1e-5)
    # a batch without corpus rows is plain SFT; one with only corpus rows is plain corpus LM
    only_sft = collate(tok.pad_token_id)([x for x in ds.items if not x.is_corpus])
    assert module.losses(only_sft)["loss"].item() == pytest.approx(module.losses(only_sft)["ce"].item())
    only_cor = collate(tok.pad_token_id)([x for x in ds.items if x.is_corpus])
    assert module.losses(only_cor)["loss"].item() == pytest.approx(cor_ce.item(), rel=1e-5)


def test_injection_run_logs_the_corpus_loss_and_groups_by_length(tmp_path):
    # one mix: at 6 steps a curriculum's last phase is 1-2 batches, and which steps see corpus windows is luck
    run_dir, done = run(tmp_path, ["strategy=injection", "pipeline.stages=[data,distill]",
                                   "trainer.group_by_length=true", "task.curriculum=[]"])
    m = done["distill"].metrics
    assert m["strategy/mode"] == "injection" and m["distill/train/corpus_examples"] > 0
    assert m["distill/steps"] == 6 and 0 <= m["distill/padding_share"] < 1
    logged = read_train_metrics(done["distill"])
    assert any(r.get("train/corpus_ce", 0) > 0 for r in logged)


def test_kd_weight_zero_skips_the_teacher_forward(teacher_dir, monkeypatch):
    """kd_weight=0 (and no hidden term): the loss is plain CE and the teacher is never run."""
    teacher, ds, batch, live, align = _batch_and_modules(teacher_dir, 0)
    ce_only = DistillModule(live.student, "logit", {"kd_weight": 0.0}, 1e-3, 0.0, 1, 10, teacher=teacher)

    def boom(*a, **k):
        raise AssertionError("teacher forward with kd_weight=0")
    monkeypatch.setattr(teacher, "final_hidden", boom)
    monkeypatch.setattr(teacher, "logits_and_hidden", boom)
    out = ce_only.losses(batch)
    assert out["loss"].item() == pytest.approx(out["ce"].item()) and out["kd"].item() == 0


def test_store_built_on_length_slices_equals_the_unsliced_store(tmp_path, teacher_dir):
    """The store's teacher forward runs on length-sorted slices; the stored rows do not change."""
    from stratos.distill.slices import batch_slices

    teacher = HFTeacher("tiny_teacher", teacher_dir)
    tok = teacher.tokenizer
    examples = [TextExample(" ".join(["1m 2m 3m"] * n), f"Answer: {n}p") for n in (1, 7, 2, 9, 1, 6, 3, 8)]
    ds = ExampleDataset(tok, examples, [], 0.0, 128, 0)
    batch = collate(tok.pad_token_id)(list(ds.items))
    assert len(batch_slices(batch["attention_mask"], 4)) > 1  # these lengths do get sliced
    rows = {}
    for slices in (1, 4):
        reader, _ = open_topk_store(teacher, ds, cache_root=str(tmp_path / f"s{slices}"), k=8, temperature=1.0,
                                    pad_id=tok.pad_token_id, batch_size=8, length_slices=slices)
        rows[slices] = [reader.read(i) for i in range(len(ds))]
    for a, b in zip(rows[1], rows[4]):
        assert torch.equal(a.ids, b.ids)
        torch.testing.assert_close(a.logprobs.float(), b.logprobs.float(), rtol=0, atol=2e-3)
