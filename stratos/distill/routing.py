"""Multi-teacher routing: which teacher each training row learns from, and the per-row KD that follows.

The config design (a `teachers` dict of `conf/teacher/` options under ids, plus `route`) is described in
stratos/models/teachers.py, which also holds `RoutedTeacher`, the one teacher object the distill stage sees.
Here:

  route(cfg.route, task, teacher, train_rows, probe_rows) -> Routing
      by=column  each row's `route.column` names its teacher id (`route.default` for rows without one)
      by=slice   `route.slices` maps the task's slices (`task.slice_of(row)`, Mahjong: the number of winning
                 tiles) to ids; keys are a label "3", a range "0-2" or an open range "7+"
      by=auto    each teacher answers up to `route.probe_n` held-out rows of every slice; a slice goes to the
                 teacher with the highest accuracy there (ties: the teacher listed first); slices the probe did
                 not see go to `route.default`, else to the teacher best over all probed rows. The accuracy
                 table is recorded (routing.json and strategy.json's `routing`). The routing is priced in USD of
                 teacher work (routing.json `cost`), and with `route.budget_usd` each slice gets the teacher
                 that, over all slices, gives the most expected correct teacher answers within that budget
                 (stratos/distill/route_budget.py).
  routed_kd(...)  logit KD per row from its own teacher: the batch is split by `teacher_index`, each group's
                 student rows get the chunked fused loss against their teacher's hidden states (no (B, T, V)
                 tensor) or, with strategy.alignment.top_k > 0, its own top-k store over its own rows
                 (open_routed_stores); the group means are weighted by supervised tokens, so the result is the
                 batch's per-token mean, as with one teacher.
  teacher_manifest / check_resume  the teacher set a checkpoint was trained with; resuming with another set
                 (other ids, kinds, sources or weights) is refused in one line.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from stratos.distill.rollouts import on_policy_losses
from stratos.errors import UserError

log = logging.getLogger("stratos")
RANGE = re.compile(r"^(\d+)(?:-(\d+)|(\+))?$")


def slice_of(task, row: dict) -> str:
    """The task's slice label of `row` (UserError when the task defines no slices)."""
    fn = getattr(task, "slice_of", None)
    if fn is None:
        raise UserError(f"invalid value for 'route.by': the task {getattr(task, 'name', task)!r} defines no slices "
                        f"(allowed: route.by=column with a teacher id per row)")
    return str(fn(row))


def slice_matches(key: str, label: str) -> bool:
    """Key "3" matches label "3"; "0-2" matches 0, 1, 2; "7+" matches 7 and up; other keys match exactly."""
    m = RANGE.match(str(key))
    if m is None or not str(label).isdigit():
        return str(key) == str(label)
    lo, hi, open_ = int(m.group(1)), m.group(2), m.group(3)
    n = int(label)
    return n >= lo if open_ else lo <= n <= (int(hi) if hi is not None else lo)


@dataclass
class Routing:
    by: str
    reason: str
    assignment: dict[str, str] = field(default_factory=dict)  # slice -> teacher id (slice, auto)
    table: dict[str, dict[str, dict]] = field(default_factory=dict)  # auto: slice -> id -> {accuracy, n}
    rows: dict[str, int] = field(default_factory=dict)  # teacher id -> training rows
    token_shares: dict[str, float] = field(default_factory=dict)  # teacher id -> share of supervised tokens
    probe_accuracy: float | None = None  # auto: the routed teacher's accuracy over all probed rows
    kept: dict[str, dict] = field(default_factory=dict)  # sequence KD: teacher id -> kept / rejected rationales
    cost: dict = field(default_factory=dict)  # auto: the teacher work priced, the budget (stratos/distill/route_budget.py)

    def as_dict(self) -> dict:
        return asdict(self)


def _slice_rule(slices: dict, default: str | None, task) -> Any:
    def rule(row: dict) -> str:
        label = slice_of(task, row)
        for key, tid in slices.items():
            if slice_matches(key, label):
                return str(tid)
        if default is None:
            raise UserError(f"invalid value for 'route.slices': no rule for slice {label!r} "
                            f"(allowed: add a key for it or set route.default=<teacher id>)")
        return default
    return rule


def _column_rule(column: str, default: str | None, ids: list[str]) -> Any:
    def rule(row: dict) -> str:
        tid = row.get(column)
        tid = default if tid in (None, "") else str(tid)
        if tid is None or tid not in ids:
            raise UserError(f"invalid value for 'route.column': row {row.get('question', '')[:40]!r} has "
                            f"{column}={row.get(column)!r} (allowed: a teacher id in teachers: {', '.join(ids)}"
                            f"{'' if default else ', or set route.default'})")
        return tid
    return rule


def probe_slices(task, probe_rows: list[dict], probe_n: int) -> dict[str, list[dict]]:
    """slice -> its first `probe_n` held-out rows, slices in the task's bucket order."""
    from stratos.tasks.base import bucket_order

    by_slice: dict[str, list[dict]] = {}
    for r in probe_rows:
        by_slice.setdefault(slice_of(task, r), []).append(r)
    return {label: by_slice[label][:probe_n] for label in bucket_order(by_slice)}


def probe_table(teacher, task, probe_rows: list[dict], probe_n: int) -> dict[str, dict[str, dict]]:
    """slice -> teacher id -> {"accuracy", "n"}: each member on up to `probe_n` held-out rows of each slice."""
    table: dict[str, dict[str, dict]] = {}
    for label, rows in probe_slices(task, probe_rows, probe_n).items():
        table[label] = {}
        for tid in teacher.ids:
            answers = teacher.answer_by(tid, task, rows)
            acc = sum(task.is_correct(r, a.text) for r, a in zip(rows, answers)) / len(rows)
            table[label][tid] = {"accuracy": round(acc, 4), "n": len(rows)}
    return table


def best_per_slice(table: dict[str, dict[str, dict]], ids: list[str], tolerance: float = 0.0,
                   costs: dict[str, float] | None = None) -> dict[str, str]:
    """slice -> the id with the highest accuracy (ties: the one listed first in `ids`); with `tolerance` > 0, the
    cheapest (`costs`, e.g. card.params_b) of those within `tolerance` of that accuracy (ties: listed first)."""
    costs = costs or {}
    out = {}
    for label, row in table.items():
        top = max(row[t]["accuracy"] for t in ids)
        near = [t for t in ids if row[t]["accuracy"] >= top - tolerance - 1e-12]
        if tolerance <= 0:
            near = [t for t in near if row[t]["accuracy"] == top][:1]
        out[label] = min(near, key=lambda t: (costs.get(t, 0.0), ids.index(t)))
    return out


def route(route_cfg, task, teacher, train_rows: list[dict], probe_rows: list[dict],
          costs: dict[str, float] | None = None, prices=None) -> Routing:
    """Decide each row's teacher; sets `teacher.route_of` and returns the record (rows per teacher filled).
    `costs`: teacher id -> cost (card.params_b), for route.tolerance > 0 without a budget. `prices`
    (route_budget.TeacherPrices): by=auto prices the routing in USD and, with route.budget_usd, routes within it."""
    by, ids, default = str(route_cfg.by), teacher.ids, route_cfg.default
    default = None if default is None else str(default)
    if by == "column":
        teacher.route_of = _column_rule(str(route_cfg.column), default, ids)
        routing = Routing(by, f"route.by=column: each row's {route_cfg.column!r} names its teacher"
                          + (f" (rows without one: {default})" if default else ""))
    elif by == "slice":
        slices = {str(k): str(v) for k, v in route_cfg.slices.items()}
        teacher.route_of = _slice_rule(slices, default, task)
        routing = Routing(by, "route.by=slice: task slices mapped in route.slices"
                          + (f" (others: {default})" if default else ""), assignment=slices)
    else:
        table = probe_table(teacher, task, probe_rows, int(route_cfg.probe_n))
        if not table:
            raise UserError("invalid value for 'route.by': 'auto' needs held-out rows to probe, the val split is empty "
                            "(allowed: task.n_val >= 1, or route.by=slice|column)")
        tol = float(route_cfg.get("tolerance", 0.0) or 0.0)
        budget = route_cfg.get("budget_usd")
        best = best_per_slice(table, ids, tol, costs)
        n_all = sum(next(iter(row.values()))["n"] for row in table.values())
        overall = {t: sum(row[t]["accuracy"] * row[t]["n"] for row in table.values()) / n_all for t in ids}
        fallback = default or max(ids, key=lambda t: (overall[t], -ids.index(t)))
        pick, cost = best, {}
        if prices is not None:
            pick, fallback, cost = _priced(table, task, teacher, train_rows, probe_rows, route_cfg, prices, best,
                                           fallback)
        elif budget is not None:
            raise ValueError("route.budget_usd needs the teachers' prices (route_budget.teacher_prices)")
        teacher.route_of = _slice_rule(pick, fallback, task)
        routed = sum(table[s][pick[s]]["accuracy"] * table[s][pick[s]]["n"] for s in table) / n_all
        alone = ", ".join(f"{t} {overall[t]:.2f}" for t in ids)
        routing = Routing(by, f"route.by=auto: {_auto_rule(tol, cost)} (routed {routed:.2f} vs alone {alone} on "
                          f"{n_all} rows; unprobed slices: {fallback})", assignment=pick, table=table,
                          probe_accuracy=round(routed, 4), cost=cost)
    for r in train_rows:
        tid = teacher.route_of(r)
        routing.rows[tid] = routing.rows.get(tid, 0) + 1
    log.info("routing: %s; rows per teacher %s", routing.reason, routing.rows)
    return routing


def _priced(table, task, teacher, train_rows, probe_rows, route_cfg, prices, best, fallback):
    """by=auto priced (stratos/distill/route_budget.py): the routing within route.budget_usd (slice -> id, the
    unprobed slices' id) and its cost record."""
    from stratos.distill.route_budget import budget_route, slice_tokens

    tokens = slice_tokens(teacher, task, probe_slices(task, probe_rows, int(route_cfg.probe_n)))  # (S, T)
    counts: dict[str, int] = {}
    for r in train_rows:
        label = slice_of(task, r)
        counts[label] = counts.get(label, 0) + 1
    unprobed = sum(c for label, c in counts.items() if label not in table)
    return budget_route(table, tokens, counts, prices, route_cfg.get("budget_usd"),
                        float(route_cfg.get("tolerance", 0.0) or 0.0), best, fallback, unprobed,
                        fixed_fallback=route_cfg.default is not None)


def _auto_rule(tol: float, cost: dict) -> str:
    """How route.by=auto chose, for the reason line (`cost`: route_budget's record, {} when unpriced)."""
    near = f"the cheapest teacher within {tol:.2f} of the most accurate" if tol > 0 else "the teacher most accurate"
    if not cost or cost["budget_usd"] is None:
        return f"each slice to {near} on its probed held-out rows" + (
            f", ${cost['usd']:.4g} of teacher work" if cost else "")
    within = f", a teacher within {tol:.2f} of a slice's best counting as the best" if tol > 0 else ""
    return (f"the routing with the most expected correct teacher answers (training rows x probe accuracy{within}) "
            f"within route.budget_usd=${cost['budget_usd']:.4g}: ${cost['usd']:.4g} of teacher work for "
            f"{cost['expected_correct']:g} (unconstrained ${cost['unconstrained_usd']:.4g} for "
            f"{cost['unconstrained_expected_correct']:g})")


def token_shares(dataset, ids: list[str]) -> dict[str, float]:
    """Teacher id -> share of the supervised tokens of `dataset` (an ExampleDataset) whose rows it teaches."""
    counts = {t: 0 for t in ids}
    for item in dataset.items:
        if item.teacher >= 0:
            counts[ids[item.teacher]] += sum(1 for x in item.labels if x != -100)
    total = max(1, sum(counts.values()))
    return {t: round(c / total, 4) for t, c in counts.items()}


def live_signal(teacher, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """(group g, rows (b,)) -> member g's KD source for those rows of the batch (a white-box forward): hidden
    states + head when its head is plain (logits formed chunk by chunk in the loss), else its logits; shifted so
    row t predicts token t + 1."""
    def signal(g: int, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        member = teacher.members[teacher.ids[g]]
        ids, mask = input_ids[rows], attention_mask[rows]
        if getattr(member, "plain_head", False):
            w, b = member.head
            return {"teacher_hidden": member.final_hidden(ids, mask)[:, :-1], "teacher_weight": w, "teacher_bias": b}
        logits, _ = member.logits_and_hidden(ids, mask)
        return {"teacher_logits": logits[:, :-1]}
    return signal


class RoutedTopK:
    """Per-teacher offline top-k stores of one split: teacher g's store holds only the rows routed to g.

    `readers[g]` is a logit_store.TopKReader; `local[i]` is dataset row i's position in its teacher's store."""

    def __init__(self, ids: list[str], readers: dict[int, Any], local: list[int]) -> None:
        self.ids, self.readers, self.local = ids, readers, local

    def signal(self, index: torch.Tensor, length: int, device):
        """(group g, rows (b,)) -> {"teacher_topk": (ids (b, T-1, k), logprobs (b, T-1, k), tail (b, T-1))}."""
        def read(g: int, rows: torch.Tensor) -> dict:
            local = [self.local[i] for i in index[rows].tolist()]
            got = self.readers[g].read_batch(local, length=length)
            return {"teacher_topk": tuple(x[:, :-1].to(device) for x in got.as_tuple())}
        return read


def subset(dataset, idx: list[int]):
    """The ExampleDataset of rows `idx` of `dataset` (same tokens, same order): one teacher's share."""
    sub = type(dataset).__new__(type(dataset))
    sub.items, sub.topk_k, sub.xtok_counts = [dataset.items[i] for i in idx], 0, {}
    return sub


def open_routed_stores(teacher, dataset, split: str, **store_kw) -> tuple[RoutedTopK, dict]:
    """Each white-box member's top-k store over its own rows of `dataset` (teacher_store.open_topk_store: computed
    once per (weights, tokens, k, T) and shared across runs). Returns the reader and stats: the totals in
    open_topk_store's keys plus `by_teacher`."""
    from stratos.distill.teacher_store import open_topk_store

    readers, local, by = {}, [-1] * len(dataset), {}
    for g, tid in enumerate(teacher.ids):
        idx = [i for i, item in enumerate(dataset.items) if item.teacher == g]
        if not idx:
            continue
        for j, i in enumerate(idx):
            local[i] = j
        readers[g], by[tid] = open_topk_store(teacher.members[tid], subset(dataset, idx), what=f"{split}/{tid}",
                                              **store_kw)
    n = sum(s["n_tokens"] for s in by.values())
    stats = {"url": [s["url"] for s in by.values()], "written": any(s["written"] for s in by.values()),
             "seconds": round(sum(s["seconds"] for s in by.values()), 2), "k": store_kw["k"], "n_tokens": n,
             "bytes_per_token": round(sum(s["bytes_per_token"] * s["n_tokens"] for s in by.values()) / max(1, n), 2),
             "by_teacher": by}
    return RoutedTopK(teacher.ids, readers, local), stats


def routed_kd(loss_fn, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, teacher_index: torch.Tensor,
              ids: list[str], signal, rolled: torch.Tensor | None = None, rollout_fn=None) -> dict[str, torch.Tensor]:
    r"""Logit KD of each row from its own teacher.

    hidden (B, T-1, H) student states, weight (V, H) its head, labels (B, T-1) with -100 unsupervised,
    teacher_index (B,) each row's teacher (its position in `ids`; -1 = none), `signal(g, rows)` teacher g's KD
    source for `rows` (`live_signal`: a white-box forward; `RoutedTopK.signal`: its top-k store).
    With $G_g$ the rows of teacher $g$ and $n_g$ their supervised tokens ($N = \sum_g n_g$):

    $$ \mathcal{L} = \sum_g \frac{n_g}{N}\, \mathcal{L}_{\text{chunked}}(h_{G_g}, W, y_{G_g}; \text{teacher}_g) $$

    which is the batch's per-token mean, as `ChunkedDistillLoss` gives for a single teacher.
    On-policy (`rolled` (B,) bool, the rows the student sampled): each group's part is `on_policy_losses` over its
    rows -- data rows (1 - w) CE + w KD by `loss_fn`, rollout rows KD alone by `rollout_fn` -- still scored by
    the group's own teacher, so a rollout is judged by the teacher its prompt was routed to.
    Returns {"loss", "ce", "kd"} (+ "rollout_kd" on-policy) plus "teacher_share/<id>" (detached share of the
    batch's supervised tokens).
    """
    sup = labels != -100  # (B, T-1)
    n_all = sup.sum().clamp(min=1)
    if bool((sup.any(1) & (teacher_index < 0)).any()):
        raise ValueError("a supervised row has no teacher (teacher_index -1) in multi-teacher logit KD")
    zero = hidden.sum() * 0.0  # keeps the graph when the batch has no supervised token
    out = {"loss": zero, "ce": zero.detach(), "kd": zero.detach()}
    if rolled is not None:
        rolled = rolled.to(labels.device)
        n_roll = (sup & rolled[:, None]).sum().clamp(min=1)  # the per-token logs: ce over data tokens,
        n_data = (sup & ~rolled[:, None]).sum().clamp(min=1)  # rollout_kd over sampled ones
        out["rollout_kd"] = zero.detach()
    for g, tid in enumerate(ids):
        rows = (teacher_index == g).nonzero(as_tuple=True)[0]  # (b_g,)
        n = sup[rows].sum()
        out[f"teacher_share/{tid}"] = (n / n_all).detach().float()
        if rows.numel() == 0 or int(n) == 0:
            continue
        w = n / n_all
        if rolled is None:
            part = loss_fn(hidden[rows], weight, labels[rows], **signal(g, rows))
            out["ce"] = out["ce"] + w * part["ce"]
        else:  # its "ce" is per data token of the group, its "rollout_kd" per sampled token: weight by those counts
            part = on_policy_losses(loss_fn, rollout_fn, hidden[rows], weight, labels[rows], rolled[rows],
                                    signal(g, rows))
            n_g_roll = (sup[rows] & rolled[rows][:, None]).sum()
            out["ce"] = out["ce"] + part["ce"] * (n - n_g_roll) / n_data
            out["rollout_kd"] = out["rollout_kd"] + part["rollout_kd"].detach() * n_g_roll / n_roll
        out["loss"] = out["loss"] + w * part["loss"]
        out["kd"] = out["kd"] + w * part["kd"]
    return out


def teacher_manifest(teacher) -> list[dict]:
    """What a checkpoint was distilled from: per teacher its id, name, kind, source and weight fingerprint."""
    from stratos.distill.teacher_store import teacher_fingerprint

    members = getattr(teacher, "members", None) or ({"teacher": teacher} if teacher is not None else {})
    out = []
    for tid, m in members.items():
        source = getattr(m, "name_or_path", None) or (f"{getattr(m, 'base_url', '')} {getattr(m, 'model', '')}".strip()
                                                      if getattr(m, "kind", "") == "openai" else None)
        fp = teacher_fingerprint(m) if isinstance(getattr(m, "model", None), torch.nn.Module) else None
        out.append({"id": tid, "name": getattr(m, "name", None), "kind": str(getattr(m, "kind", "")), "source": source,
                    "fingerprint": fp})
    return out


def check_resume(saved: list[dict] | None, current: list[dict]) -> None:
    """Refuse resuming a checkpoint distilled from another teacher set (UserError, one line)."""
    if saved is None or saved == current:
        return

    def show(m: list[dict]) -> str:
        return ", ".join(f"{t['id']}={t['fingerprint'] or t['source'] or t['name']}" for t in m) or "none"

    raise UserError(f"invalid value for 'teachers': the checkpoint was distilled from [{show(saved)}], this run "
                    f"has [{show(current)}] (allowed: the same teachers, or a new paths.output_root / seed to start over)")


def route_teachers(cfg, task, teacher, train_rows: list[dict], probe_rows: list[dict],
                   server=None) -> Routing | None:
    """The routing of a multi-teacher run (None with one teacher): `route` over `cfg.route`, priced on `server`
    (route_budget.ServerRate; None: this machine's)."""
    if not hasattr(teacher, "members"):
        return None
    from stratos.distill.route_budget import server_rate, teacher_prices

    costs = {str(t): float(c.card.params_b) for t, c in cfg.teachers.items()}
    prices = teacher_prices(cfg, teacher, server or server_rate(cfg)) if str(cfg.route.by) == "auto" else None
    return route(cfg.route, task, teacher, train_rows, probe_rows, costs, prices)


def routed_supervised(source, task, rows: list[dict], teacher, rules_in_prompt: bool, verify: bool = True,
                      n_samples: int = 1) -> tuple[list, dict]:
    """`examples.supervised_texts` with each example marked with its own teacher (`TextExample.teacher`);
    teacher-written targets (sequence KD) come from each row's own teacher, rejection-sampled per teacher."""
    from dataclasses import replace

    from stratos.distill.examples import supervised_texts

    if source != "teacher":  # verified or answer targets: one example per row, in order
        sup, stats = supervised_texts(source, task, rows, teacher, rules_in_prompt, verify, n_samples)
        return [replace(e, teacher=teacher.index(teacher.route_of(r))) for e, r in zip(sup, rows)], stats
    out, by_teacher = [], {}
    for g, tid in enumerate(teacher.ids):
        mine = [r for r in rows if teacher.route_of(r) == tid]
        if not mine:
            continue
        sup, st = supervised_texts(source, task, mine, teacher.members[tid], rules_in_prompt, verify, n_samples)
        out += [replace(e, teacher=g) for e in sup]
        by_teacher[tid] = st
    stats = {k: sum(int(st.get(k) or 0) for st in by_teacher.values()) for k in ("kept", "rejected")}
    return out, {**stats, "by_teacher": by_teacher}
