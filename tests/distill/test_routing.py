"""stratos/distill/routing.py: slice rules, the auto probe table, per-row logit KD from each row's own teacher,
the teacher manifest and the resume refusal."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from stratos.config import RouteConfig
from stratos.distill.examples import ExampleDataset, TextExample, collate
from stratos.distill.losses import ChunkedDistillLoss
from stratos.distill.routing import (best_per_slice, check_resume, live_signal, route, routed_kd, slice_matches,
                                     teacher_manifest, token_shares)
from stratos.errors import UserError
from stratos.models.teacher import HFTeacher, TeacherAnswer
from stratos.models.teachers import RoutedTeacher


class SliceTask:
    name = "toy"

    def slice_of(self, row):
        return str(row["n"])

    def is_correct(self, row, text):
        return text == "right"


class Oracle:
    """A teacher right on the slices in `good`, wrong elsewhere; counts the rows it was asked."""

    capabilities = frozenset({"text"})

    def __init__(self, name, good):
        self.name, self.good, self.asked = name, set(good), 0

    def answer(self, task, rows, rules_in_prompt=False):
        self.asked += len(rows)
        return [TeacherAnswer("right" if r["n"] in self.good else "wrong") for r in rows]


def rows(ns, k=3):
    return [{"question": f"q{n}-{i}", "n": n} for n in ns for i in range(k)]


def cfg(**kw):
    return OmegaConf.structured(RouteConfig(**kw))


@pytest.mark.parametrize("key,label,want", [("3", "3", True), ("3", "4", False), ("0-2", "0", True), ("0-2", "2", True),
                                            ("0-2", "3", False), ("7+", "7", True), ("7+", "13", True),
                                            ("7+", "6", False), ("9+", "9+", True), ("easy", "easy", True)])
def test_slice_keys_match_labels_ranges_and_open_ranges(key, label, want):
    assert slice_matches(key, label) is want


def test_slice_routing_sends_each_row_to_its_slice_teacher_and_counts_rows():
    t = RoutedTeacher({"low": Oracle("low", {0}), "high": Oracle("high", {5})})
    r = route(cfg(by="slice", slices={"0-2": "low", "3+": "high"}), SliceTask(), t, rows([0, 1, 5, 9]), [])
    assert [t.route_of(x) for x in rows([0, 2, 3, 9], 1)] == ["low", "low", "high", "high"]
    assert r.rows == {"low": 6, "high": 6} and r.by == "slice"


def test_a_slice_no_rule_names_is_refused_unless_a_default_takes_it():
    t = RoutedTeacher({"low": Oracle("low", {0}), "high": Oracle("high", {5})})
    with pytest.raises(UserError, match="no rule for slice '4'"):
        route(cfg(by="slice", slices={"0-2": "low"}), SliceTask(), t, rows([0, 4]), [])
    r = route(cfg(by="slice", slices={"0-2": "low"}, default="high"), SliceTask(), t, rows([0, 4]), [])
    assert r.rows == {"low": 3, "high": 3}


def test_auto_routing_gives_each_slice_its_best_teacher_and_records_the_table():
    a, b = Oracle("a", {0, 1}), Oracle("b", {2})
    t = RoutedTeacher({"a": a, "b": b})
    r = route(cfg(by="auto", probe_n=2), SliceTask(), t, rows([0, 1, 2, 3, 7]), rows([0, 1, 2, 3], k=4))
    assert r.assignment == {"0": "a", "1": "a", "2": "b", "3": "a"}  # slice 3: both 0 -> the first listed
    assert r.table["2"] == {"a": {"accuracy": 0.0, "n": 2}, "b": {"accuracy": 1.0, "n": 2}}
    assert t.route_of({"n": 7}) == "a"  # unprobed slice: the teacher best over all probed rows (a: 4/8)
    assert r.probe_accuracy == pytest.approx(0.75)  # routed: 6 of 8 probed rows right
    assert a.asked == 8 and b.asked == 8  # each teacher asked each probe row once
    t.answer(SliceTask(), rows([0, 1, 2, 3], k=2))  # the strategy probe re-asks: answered from the cache
    assert a.asked == 8 and b.asked == 8
    assert best_per_slice({"x": {"a": {"accuracy": 0.5}, "b": {"accuracy": 0.5}}}, ["b", "a"]) == {"x": "b"}


def test_column_routing_reads_each_rows_teacher_id_and_refuses_an_unknown_one():
    t = RoutedTeacher({"a": Oracle("a", ()), "b": Oracle("b", ())})
    train = [{"question": "x", "teacher_id": "b"}, {"question": "y", "teacher_id": "a"}, {"question": "z"}]
    r = route(cfg(by="column", default="a"), SliceTask(), t, train, [])
    assert r.rows == {"b": 1, "a": 2}
    with pytest.raises(UserError, match="teacher_id='c'"):
        route(cfg(by="column"), SliceTask(), t, [*train[:2], {"question": "w", "teacher_id": "c"}], [])
    with pytest.raises(UserError, match="or set route.default"):
        route(cfg(by="column"), SliceTask(), t, train, [])


def test_routed_teacher_offers_what_every_member_offers():
    hf_like = Oracle("h", ())
    hf_like.capabilities = frozenset({"text", "logits", "hidden"})
    t = RoutedTeacher({"e": Oracle("e", ()), "h": hf_like})
    assert t.capabilities == frozenset({"text"}) and t.tokenizer is None


# ------------------------------------------------------------------ per-row logit KD
def tiny_teacher(seed: int, vocab: int = 48, hidden: int = 32) -> HFTeacher:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    c = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=64, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    t = HFTeacher.__new__(HFTeacher)
    t.name, t.name_or_path, t.model = f"t{seed}", f"/teachers/{seed}", LlamaForCausalLM(c).eval()
    return t


def batch(B=5, T=9, V=48, H=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 6:] = 0
    labels = ids.clone()
    labels[:, :3] = -100  # prompt
    labels[mask == 0] = -100
    hidden = torch.randn(B, T - 1, H, generator=g, requires_grad=True)
    weight = torch.randn(V, H, generator=g, requires_grad=True)
    return ids, mask, labels[:, 1:], hidden, weight


def test_routed_kd_with_one_teacher_behind_every_id_is_the_single_teacher_loss():
    ids, mask, labels, hidden, weight = batch()
    t = tiny_teacher(1)
    routed = RoutedTeacher({"a": t, "b": t})
    loss_fn = ChunkedDistillLoss(kd_weight=0.5, temperature=2.0)
    w, b = t.head
    want = loss_fn(hidden, weight, labels, teacher_hidden=t.final_hidden(ids, mask)[:, :-1], teacher_weight=w)
    got = routed_kd(loss_fn, hidden, weight, labels, torch.tensor([0, 1, 1, 0, 1]), routed.ids,
                    live_signal(routed, ids, mask))
    for k in ("loss", "ce", "kd"):
        assert got[k].item() == pytest.approx(want[k].item(), rel=1e-5), k
    n = (labels != -100).sum(1).float()
    assert got["teacher_share/a"].item() == pytest.approx((n[0] + n[3]).item() / n.sum().item())


def test_routed_kd_takes_each_rows_kd_from_its_own_teacher_weighted_by_tokens():
    ids, mask, labels, hidden, weight = batch()
    ta, tb = tiny_teacher(1), tiny_teacher(2)
    routed = RoutedTeacher({"a": ta, "b": tb})
    loss_fn = ChunkedDistillLoss(kd_weight=0.5, temperature=2.0)
    index = torch.tensor([0, 1, 1, 0, 1])
    got = routed_kd(loss_fn, hidden, weight, labels, index, routed.ids, live_signal(routed, ids, mask))
    n_all = (labels != -100).sum()
    want = 0.0
    for g, t in enumerate((ta, tb)):  # each group alone against its own teacher, by hand
        rows = (index == g).nonzero(as_tuple=True)[0]
        part = loss_fn(hidden[rows], weight, labels[rows], teacher_hidden=t.final_hidden(ids[rows], mask[rows])[:, :-1],
                       teacher_weight=t.head[0])
        want = want + part["kd"] * (labels[rows] != -100).sum() / n_all
    assert got["kd"].item() == pytest.approx(want.item(), rel=1e-5)
    only_a = routed_kd(loss_fn, hidden, weight, labels, torch.zeros(5, dtype=torch.long), routed.ids,
                       live_signal(routed, ids, mask))
    assert abs(only_a["kd"].item() - got["kd"].item()) > 1e-4  # the route matters
    got["loss"].backward()
    assert hidden.grad is not None and weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="no teacher"):
        routed_kd(loss_fn, hidden, weight, labels, torch.tensor([0, -1, 1, 0, 1]), routed.ids,
                  live_signal(routed, ids, mask))


def test_on_policy_routed_kd_scores_each_rollout_by_its_own_teacher():
    """Rolled rows (student samples) take KD alone, from the teacher their row is routed to: with one teacher behind
    every id it is the single-teacher on-policy loss; with two, a rollout's gradient moves with its own teacher only."""
    from stratos.distill.rollouts import on_policy_losses

    ids, mask, labels, hidden, weight = batch()
    ta, tb = tiny_teacher(1), tiny_teacher(2)
    data_fn, roll_fn = ChunkedDistillLoss(kd_weight=0.5, temperature=2.0), ChunkedDistillLoss(kd_weight=1.0)
    rolled = torch.tensor([True, False, True, False, True])
    index = torch.tensor([0, 1, 1, 0, 1])
    same = RoutedTeacher({"a": ta, "b": ta})
    w, _ = ta.head
    want = on_policy_losses(data_fn, roll_fn, hidden, weight, labels, rolled,
                            {"teacher_hidden": ta.final_hidden(ids, mask)[:, :-1], "teacher_weight": w})
    got = routed_kd(data_fn, hidden, weight, labels, index, same.ids, live_signal(same, ids, mask), rolled, roll_fn)
    for k in ("loss", "ce", "kd", "rollout_kd"):
        assert got[k].item() == pytest.approx(want[k].item(), rel=1e-5), k

    def grads(teachers):
        h = hidden.detach().clone().requires_grad_(True)
        r = RoutedTeacher(teachers)
        routed_kd(data_fn, h, weight.detach(), labels, index, r.ids, live_signal(r, ids, mask), rolled,
                  roll_fn)["loss"].backward()
        return h.grad

    g1, g2 = grads({"a": ta, "b": tb}), grads({"a": ta, "b": tiny_teacher(7)})  # only teacher b changes
    a_rows, b_rows = (index == 0), (index == 1)
    assert torch.allclose(g1[a_rows], g2[a_rows], atol=1e-6)  # rows of teacher a (one a rollout) unmoved
    assert not torch.allclose(g1[b_rows & rolled], g2[b_rows & rolled], atol=1e-4)  # b's rollouts follow b


def test_the_module_routes_a_collated_batch_by_its_teacher_index():
    from stratos.distill.module import DistillModule

    ta, tb = tiny_teacher(1), tiny_teacher(2)
    routed = RoutedTeacher({"a": ta, "b": tb})
    student = tiny_teacher(3).model.train()
    for p in student.parameters():
        p.requires_grad_(True)
    items = [ExampleDataset.from_items([([1, 5, 6, 7, 2], [-100, -100, 6, 7, 2])])[0]._replace(teacher=g)
             for g in (0, 1, 1)]
    b = collate(0)(items)
    assert b["teacher_index"].tolist() == [0, 1, 1]
    m = DistillModule(student, "logit", {"kd_weight": 0.5}, 1e-3, 0.0, 1, 10, teacher=routed,
                      teacher_manifest=teacher_manifest(routed))
    out = m.losses(b)
    assert set(out) >= {"loss", "ce", "kd", "teacher_share/a", "teacher_share/b"}
    assert out["teacher_share/b"].item() == pytest.approx(2 / 3)


# ------------------------------------------------------------------ records
def test_token_shares_count_supervised_tokens_per_teacher():
    tok_items = [([1, 2, 3, 4], [-100, 2, 3, 4]), ([1, 2, 3], [-100, -100, 3])]
    ds = ExampleDataset.from_items(tok_items)
    ds.items = [ds.items[0]._replace(teacher=1), ds.items[1]._replace(teacher=0)]
    assert token_shares(ds, ["a", "b"]) == {"a": 0.25, "b": 0.75}


def test_a_checkpoint_of_another_teacher_set_is_refused_in_one_line():
    ta, tb = tiny_teacher(1), tiny_teacher(2)
    saved = teacher_manifest(RoutedTeacher({"a": ta, "b": tb}))
    check_resume(saved, teacher_manifest(RoutedTeacher({"a": ta, "b": tb})))  # same set: resumes
    check_resume(None, saved)  # a checkpoint from before manifests: resumes
    with torch.no_grad():
        next(tb.model.parameters()).add_(1e-3)  # same ids and paths, other weights
    for other in (teacher_manifest(RoutedTeacher({"a": ta, "b": tb})), teacher_manifest(RoutedTeacher({"a": ta})),
                  teacher_manifest(ta)):
        with pytest.raises(UserError) as e:
            check_resume(saved, other)
        assert "\n" not in str(e.value) and "the checkpoint was distilled from" in str(e.value)


def test_a_single_teacher_manifest_names_it_teacher():
    m = teacher_manifest(tiny_teacher(1))
    assert [x["id"] for x in m] == ["teacher"] and m[0]["source"] == "/teachers/1" and m[0]["fingerprint"]
    assert teacher_manifest(None) == []


def test_a_tolerance_sends_a_slice_to_the_cheapest_teacher_near_the_best():
    table = {"0": {"big": {"accuracy": 0.9}, "small": {"accuracy": 0.85}, "mid": {"accuracy": 0.5}},
             "1": {"big": {"accuracy": 0.9}, "small": {"accuracy": 0.2}, "mid": {"accuracy": 0.88}}}
    ids, costs = ["big", "small", "mid"], {"big": 70.0, "small": 7.0, "mid": 14.0}
    assert best_per_slice(table, ids) == {"0": "big", "1": "big"}
    assert best_per_slice(table, ids, 0.1, costs) == {"0": "small", "1": "mid"}
    assert best_per_slice(table, ids, 1.0, costs) == {"0": "small", "1": "small"}
    t = RoutedTeacher({"big": Oracle("big", {0, 1}), "small": Oracle("small", {0})})
    r = route(cfg(by="auto", probe_n=2, tolerance=0.5), SliceTask(), t, rows([0, 1]), rows([0, 1], k=2),
              costs={"big": 70.0, "small": 7.0})
    assert r.assignment == {"0": "small", "1": "big"} and "cheapest teacher within 0.50" in r.reason
