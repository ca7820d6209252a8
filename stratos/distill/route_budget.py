r"""Route within a budget: what each teacher costs per training row, and the most accurate routing that fits.

With `route.by=auto` the probe measures every teacher's accuracy per task slice (stratos/distill/routing.py).
Here that table meets a price:

  ServerRate     the server the run trains on, as the cost model sees it: sustained FLOP/s and USD per hour. From
                 the plan stage's run estimate (plan/plan.json `run`: its FLOPs over its hours, its price) when the
                 pipeline ran the plan stage, else this machine's catalog row (stratos/plan/catalog.py
                 local_machine at servers.local_price_hour, the planner's CPU MFU prior at trainer.batch_size).
  TeacherPrices  how each teacher's tokens are paid: a white-box (hf) teacher by compute on that server
                 (card.params_b, else its loaded parameters), an API (openai) teacher per token at
                 servers.api_usd_per_mtok, the rules engine not at all; route.usd_per_mtok.<id> prices any teacher
                 per token instead. `per_row` is the planner's estimators (stratos/plan/estimators.py:
                 train_flops, train_hours, cost_usd) over a (S, T) token grid:

    $$ c_{st} = \frac{2 N_t \tau_{st}}{F} \cdot \frac{p_{\text{hour}}}{3600} + \frac{\tau_{st}}{10^6} p^{\text{tok}}_t $$

                 $\tau_{st}$ the tokens teacher $t$ handles for one row of slice $s$ (mean over the probed rows of
                 the question plus its own probe answer, in its own tokenizer, else 4 characters per token),
                 $N_t$ its parameters when priced by compute (else 0), $F$ the server's sustained FLOP/s,
                 $p^{\text{tok}}_t$ its USD per million tokens when priced per token (else 0). One pass per
                 training row: the budget is the teacher work of reading and answering each row once.
  choose         the exact multiple-choice knapsack over slices:

    $$ \max_{t_1 \dots t_S} \sum_s n_s \tilde a_{s t_s} \quad \text{s.t.} \quad \sum_s n_s c_{s t_s} \le B $$

                 $n_s$ training rows of slice $s$, $\tilde a$ the probed accuracy with route.tolerance applied (a
                 teacher within the tolerance of its slice's best counts as the best, so among those the cheaper
                 wins), $B$ = route.budget_usd. The training rows of slices the probe did not see are one
                 more row of the grid, at each teacher's mean accuracy and cost over all probed rows (their
                 teacher is route.default's when it is set). Ties: the cheaper total,
                 then the teachers listed first. Exact enumeration while $T^S \le$ ENUMERATE_MAX, else a dynamic
                 programme over slices that keeps the Pareto list of (cost, value) partial routings (dominated
                 ones dropped: exact, no rounding of costs).
  budget_route   the chosen slice -> teacher map, the unprobed slices' teacher, and the `cost` record of
                 routing.json; a budget below the cheapest routing is refused in one line, before any training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from stratos.errors import bad_value
from stratos.plan import estimators as E

CHARS_PER_TOKEN = 4  # a teacher without a tokenizer here (API, rules engine): the usual rate of English BPE
ENUMERATE_MAX = 1 << 16  # routings enumerated at once (T^S); beyond that the Pareto DP
SLACK = 1e-9  # relative slack of the budget test (sums of floats)


@dataclass(frozen=True)
class ServerRate:
    name: str
    flops_per_s: float  # sustained (achieved, not peak) FLOP/s
    price_hour: float  # USD per hour of it
    source: str  # where the two figures come from

    def as_dict(self) -> dict:
        return asdict(self)


def server_rate(cfg, plan: dict | None = None) -> ServerRate:
    """The run's server: plan.json's run estimate (flops / training seconds, price_hour) when there is one,
    else this machine's catalog row."""
    run = (plan or {}).get("run") or {}
    for est in (run.get("estimates") or {}).values():
        seconds = (float(est.get("train_hours") or 0.0) - float(est.get("startup_hours") or 0.0)) * 3600.0
        if float(est.get("flops") or 0.0) > 0 and seconds > 0 and est.get("price_hour") is not None:
            return ServerRate(str(run["server"]), float(est["flops"]) / seconds, float(est["price_hour"]),
                              "plan/plan.json run estimate")
    from stratos.plan.catalog import GPU_SPECS, local_machine

    row = local_machine(float(cfg.servers.local_price_hour))
    flops = E.achieved_flops(1, row["tflops"], GPU_SPECS["cpu"]["mfu"], int(cfg.trainer.batch_size), 1.0)
    return ServerRate(row["name"], float(flops), float(row["price_hour"]),
                      "this machine (catalog local_machine at servers.local_price_hour)")


@dataclass
class TeacherPrices:
    ids: list[str]  # (T,)
    n_params: np.ndarray  # (T,) parameters run on the server per token (priced by compute), else 0
    usd_per_mtok: np.ndarray  # (T,) USD per million tokens (priced per token), else 0
    server: ServerRate

    def per_row(self, tokens: np.ndarray) -> np.ndarray:
        """(S, T) USD per training row from (S, T) teacher tokens per row."""
        flops = E.train_flops(0.0, self.n_params[None, :], 0.0, tokens, 0)  # (S, T) = 2 N_t tau
        hours = E.train_hours(flops, self.server.flops_per_s)  # (S, T)
        return E.cost_usd(hours, self.server.price_hour, tokens, self.usd_per_mtok[None, :])  # (S, T)

    def as_dict(self) -> dict:
        def how(j: int) -> str:
            return "compute" if self.n_params[j] > 0 else ("tokens" if self.usd_per_mtok[j] > 0 else "free")
        return {t: {"priced_by": how(j), "n_params": float(self.n_params[j]),
                    "usd_per_mtok": float(self.usd_per_mtok[j])} for j, t in enumerate(self.ids)}


def teacher_prices(cfg, teacher, server: ServerRate) -> TeacherPrices:
    """Each member of `teacher` (a RoutedTeacher) priced from its config `cfg.teachers.<id>` and `cfg.route`."""
    over = {str(k): float(v) for k, v in (cfg.route.get("usd_per_mtok") or {}).items()}
    n, p = np.zeros(len(teacher.ids)), np.zeros(len(teacher.ids))  # (T,), (T,)
    for j, tid in enumerate(teacher.ids):
        t = cfg.teachers[tid]
        if tid in over:
            p[j] = over[tid]
        elif t.kind == "hf":
            n[j] = float(t.card.params_b) * 1e9 or _loaded_params(teacher.members[tid])
        elif t.kind == "openai":
            p[j] = float(cfg.servers.api_usd_per_mtok)
    return TeacherPrices(list(teacher.ids), n, p, server)


def _loaded_params(member) -> float:
    model = getattr(member, "model", None)
    return float(sum(x.numel() for x in model.parameters())) if model is not None else 0.0


def text_tokens(member, text: str) -> int:
    """Tokens of `text` for `member`: its own tokenizer, else CHARS_PER_TOKEN characters per token."""
    tok = getattr(member, "tokenizer", None)
    if tok is not None:
        return len(tok.encode(text, add_special_tokens=False))
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def slice_tokens(teacher, task, by_slice: dict[str, list[dict]]) -> np.ndarray:
    """(S, T) mean tokens per row each member handles on each slice's probed rows: the question and its own answer
    (cached by the probe, so nothing is asked again)."""
    out = np.zeros((len(by_slice), len(teacher.ids)))  # (S, T)
    for i, rows in enumerate(by_slice.values()):
        for j, tid in enumerate(teacher.ids):
            m = teacher.members[tid]
            answers = teacher.answer_by(tid, task, rows)
            out[i, j] = np.mean([text_tokens(m, r["question"]) + text_tokens(m, a.text) for r, a in zip(rows, answers)])
    return out


def choose(value: np.ndarray, weight: np.ndarray, budget: float,
           enumerate_max: int = ENUMERATE_MAX) -> np.ndarray | None:
    """(S,) teacher index per slice maximising value[s, t_s] summed over slices with weight[s, t_s] summed <= budget
    (value, weight (S, T)); ties: the smaller weight, then the lexicographically smallest indices. None when even
    the lightest choice exceeds the budget."""
    S, T = value.shape
    cap = budget + SLACK * abs(budget)
    if weight.min(axis=1).sum() > cap:
        return None
    if S == 0:
        return np.zeros(0, dtype=np.int64)
    if T ** S <= enumerate_max:
        idx = np.indices((T,) * S).reshape(S, -1)  # (S, K): routing k, in lexicographic order
        val, cost = np.zeros(idx.shape[1]), np.zeros(idx.shape[1])  # (K,), (K,)
        for s in range(S):  # summed slice by slice, in the DP's order
            val += value[s, idx[s]]
            cost += weight[s, idx[s]]
        ok = np.flatnonzero(cost <= cap)
        return idx[:, ok[np.lexsort((ok, cost[ok], -val[ok]))[0]]]
    rest = np.append(np.cumsum(weight.min(axis=1)[::-1])[::-1], 0.0)  # (S+1,) least weight of slices s..S-1
    states = [(0.0, 0.0, ())]  # (weight, value, indices so far): the Pareto list
    for s in range(S):
        grown = [(w + weight[s, t], v + value[s, t], a + (t,)) for w, v, a in states for t in range(T)
                 if w + weight[s, t] + rest[s + 1] <= cap]
        grown.sort(key=lambda x: (x[0], -x[1], x[2]))
        states, top = [], -math.inf
        for st in grown:  # by weight: keep a state only if it is worth more than every lighter one
            if st[1] > top:
                states.append(st)
                top = st[1]
    return np.array(states[-1][2], dtype=np.int64)


def _sig(x: float) -> float:
    return float(f"{float(x):.6g}")


def _up(x: float) -> float:
    """`x` rounded up to 4 significant digits (a budget that large is enough)."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(x)) - 3)
    return math.ceil(x / scale * (1 - 1e-12)) * scale


UNPROBED = "(unprobed)"  # the rows of slices the probe did not see: one more row of the knapsack's grid


def budget_route(table: dict[str, dict[str, dict]], tokens: np.ndarray, train_rows: dict[str, int],
                 prices: TeacherPrices, budget: float | None, tolerance: float, best: dict[str, str],
                 fallback: str, unprobed_rows: int, fixed_fallback: bool = False) -> tuple[dict[str, str], str, dict]:
    """(slice -> teacher id, the teacher of unprobed slices, routing.json's `cost` record).

    `table` the probe table, `tokens` (S, T) per row in its slice order, `train_rows` training rows per slice label,
    `best` and `fallback` the routing without a budget, `unprobed_rows` training rows of slices the probe did not see.
    Those rows are one more knapsack row, at each teacher's mean accuracy and cost over all probed rows, unless
    `fixed_fallback` (route.default names their teacher). Without a budget `best` and `fallback` are kept and priced.
    """
    ids = prices.ids
    labels = list(table) + [UNPROBED]
    acc = np.array([[table[s][t]["accuracy"] for t in ids] for s in table])  # (S, T)
    n_probe = np.array([table[s][ids[0]]["n"] for s in table], dtype=float)  # (S,)
    usd = prices.per_row(tokens)  # (S, T)
    acc = np.vstack([acc, n_probe @ acc / n_probe.sum()])  # (S+1, T): unprobed rows at the probed mean
    usd = np.vstack([usd, n_probe @ usd / n_probe.sum()])  # (S+1, T)
    n = np.array([train_rows.get(s, 0) for s in table] + [unprobed_rows], dtype=float)  # (S+1,)
    free = n > 0
    if fixed_fallback:  # route.default: no other teacher for the unprobed rows
        free[-1] = False
    pick = {**best, UNPROBED: fallback}
    cheapest = {s: (ids[int(np.argmin(usd[i]))] if free[i] else pick[s]) for i, s in enumerate(labels)}
    if budget is not None:
        top = acc.max(axis=1, keepdims=True)  # (S+1, 1)
        near = np.where(acc >= top - tolerance - 1e-12, top, acc)  # (S+1, T): within the tolerance counts as best
        fixed = labels_total(n, usd, ids, labels, pick, ~free)
        k = choose(n[free, None] * near[free], n[free, None] * usd[free], float(budget) - fixed)  # free slices only
        if k is None:
            least = labels_total(n, usd, ids, labels, cheapest)
            raise bad_value("route.budget_usd", float(budget),
                            f"route.budget_usd >= {_up(least):.4g}, what the cheapest routing of these {int(n.sum())} "
                            "training rows costs in teacher work; or fewer rows via task.n_train, or cheaper teachers "
                            "via route.usd_per_mtok / servers.local_price_hour")
        pick.update({s: ids[t] for s, t in zip([s for s, f in zip(labels, free) if f], k)})

    def correct(p: dict[str, str]) -> float:
        return float(sum(n[i] * acc[i, ids.index(p[s])] for i, s in enumerate(labels)))

    unconstrained = {**best, UNPROBED: fallback}
    record = {
        "budget_usd": None if budget is None else float(budget), "usd": _sig(labels_total(n, usd, ids, labels, pick)),
        "unconstrained": best, "unconstrained_usd": _sig(labels_total(n, usd, ids, labels, unconstrained)),
        "cheapest_usd": _sig(labels_total(n, usd, ids, labels, cheapest)),
        "expected_correct": round(correct(pick), 2), "unconstrained_expected_correct": round(correct(unconstrained), 2),
        "per_slice": {s: {"teacher": pick[s], "rows": int(n[i]), "usd": _sig(n[i] * usd[i, ids.index(pick[s])]),
                          "usd_per_row": {t: _sig(usd[i, j]) for j, t in enumerate(ids)},
                          "tokens_per_row": {t: round(float(tokens[i, j]), 1) for j, t in enumerate(ids)}}
                      for i, s in enumerate(labels[:-1])},
        "unprobed": {"rows": int(unprobed_rows), "teacher": pick[UNPROBED],
                     "usd": _sig(n[-1] * usd[-1, ids.index(pick[UNPROBED])])},
        "probe_usd": _sig((n_probe[:, None] * usd[:-1]).sum()),
        "server": prices.server.as_dict(), "teachers": prices.as_dict(),
    }
    return {s: pick[s] for s in labels[:-1]}, pick[UNPROBED], record


def labels_total(n: np.ndarray, usd: np.ndarray, ids: list[str], labels: list[str], pick: dict[str, str],
                 only: np.ndarray | None = None) -> float:
    """USD of routing `pick` (label -> id): n (L,) rows times usd (L, T) per row, over the labels in `only` (L,)."""
    cols = np.array([ids.index(pick[s]) for s in labels])  # (L,)
    part = n * usd[np.arange(len(labels)), cols]  # (L,)
    return float(part[only].sum() if only is not None else part.sum())
