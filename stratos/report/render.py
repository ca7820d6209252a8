"""Render a report dict as Markdown (for people) and as a short console table."""

from __future__ import annotations

from stratos.tasks.base import bucket_order


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _test_splits(r: dict) -> dict[str, dict]:
    """{split: metrics} of every scored test split; reports written before extra splits have just `student`."""
    return r["metrics"].get("test_splits") or {"test": r["metrics"]["student"]}


def _split_label(split: str, m: dict) -> str:
    dist = m.get("distribution")
    return f"{split}, {dist}" if dist and not split.endswith(dist) else split


def _summary_rows(r: dict) -> list[tuple[str, str]]:
    sel = r["plan"].get("selected") or {}
    st, m = r["strategy"], r["metrics"]
    rows = [
        ("task", r["task"] + (" (synthetic data)" if (r.get("data") or {}).get("synthetic") else "")),
        ("plan: selected", ", ".join(f"{k}={sel[k]}" for k in ("server", "teacher", "student", "strategy") if k in sel)
         or "—"),
        ("plan: candidates / pareto", f"{_fmt(r['plan'].get('candidates'))} / {_fmt(r['plan'].get('pareto'))}"),
        ("executed here", ", ".join(f"{k}={v}" for k, v in r["plan"]["executed"].items())),
        ("strategy", f"{_fmt(st.get('name'))} ({_fmt(st.get('mode'))})"),
        ("teacher probe accuracy", _fmt(st.get("teacher_probe_accuracy"))),
        *([("teachers: route", rt["reason"]),
           ("teachers: token shares", ", ".join(f"{t} {_fmt(v)}" for t, v in rt["token_shares"].items()))]
          if (rt := st.get("routing")) else []),
        *[(f"student accuracy ({_split_label(s, t)})", f"{_fmt(t.get('accuracy'))} on {_fmt(t.get('n'))} items")
          for s, t in _test_splits(r).items()],
        ("teacher accuracy (probe, val)", f"{_fmt(m['teacher'].get('accuracy'))} on {_fmt(m['teacher'].get('n'))} items"),
        ("latency per answer p50 / p95 ms",
         f"{_fmt(m['student'].get('latency_ms_p50'))} / {_fmt(m['student'].get('latency_ms_p95'))}"),
        ("ONNX max |logit diff|", _fmt(r["export"].get("onnx_max_abs_diff"))),
        *([("train loss first -> last (csv log)",
            f"{_fmt(c['first_loss'])} -> {_fmt(c['last_loss'])} at step {c['last_step']}")] if (c := r.get("curve")) else []),
        ("timings (s)", ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())),
    ]
    return rows


def console_table(r: dict) -> str:
    rows = _summary_rows(r)
    w = max(len(k) for k, _ in rows)
    line = "-" * (w + 3 + max(len(v) for _, v in rows))
    return "\n".join([line, *[f"{k:<{w}} | {v}" for k, v in rows], line])


def _difficulty_table(splits: dict[str, dict]) -> list[str]:
    """Accuracy and item count per difficulty bucket (Mahjong: waits=N, the number of winning tiles), one
    column pair per test split; a bucket a split lacks shows 0 items."""
    splits = {s: t for s, t in splits.items() if t.get("by_difficulty")}
    buckets = bucket_order({b for t in splits.values() for b in t["by_difficulty"]})
    if not buckets:
        return []
    head = "| bucket | " + " | ".join(f"{_split_label(s, t)}: n | accuracy" for s, t in splits.items()) + " |"
    out = ["", "## Student accuracy by difficulty", "", head, "|---" * (1 + 2 * len(splits)) + "|"]
    for b in buckets:
        cells = []
        for t in splits.values():
            n = (t.get("n_by_difficulty") or {}).get(b)
            acc = t["by_difficulty"].get(b)
            cells.append(f"{_fmt(n if n is not None else (0 if acc is None else None))} | {_fmt(acc)}")
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    return out


def _cost_lines(cost: dict | None) -> list[str]:
    """route=auto: the teacher work in USD against route.budget_usd, and the server it was priced on."""
    if not cost:
        return []
    budget = "no budget" if cost["budget_usd"] is None else f"route.budget_usd ${_fmt(cost['budget_usd'])}"
    srv = cost["server"]
    return [f"- teacher work: ${_fmt(cost['usd'])} of {budget} (unconstrained best ${_fmt(cost['unconstrained_usd'])},"
            f" cheapest ${_fmt(cost['cheapest_usd'])}); priced on {srv['name']} at ${_fmt(srv['price_hour'])}/h, "
            f"{srv['flops_per_s'] / 1e12:.3g} TFLOP/s ({srv['source']})"]


def _teachers_table(routing: dict | None) -> list[str]:
    """Several teachers: rows and supervised-token share per teacher, and with route=auto the probe accuracy of
    every teacher per slice (the routed teacher in bold)."""
    if not routing:
        return []
    out = ["", "## Teachers", "", f"- route: {routing['reason']}", *_cost_lines(routing.get("cost")), "",
           "| teacher | training rows | token share |", "|---|---|---|"]
    out += [f"| {t} | {_fmt(routing['rows'].get(t, 0))} | {_fmt(s)} |" for t, s in routing["token_shares"].items()]
    table, ids = routing.get("table") or {}, list(routing["token_shares"])
    per = (routing.get("cost") or {}).get("per_slice") or {}
    if table:
        usd = [" routed teacher USD |"] if per else [""]
        out += ["", "| slice | " + " | ".join(f"{t} probe accuracy" for t in ids) + " |" + usd[0],
                "|---" * (len(ids) + 1 + bool(per)) + "|"]
        for label, row in table.items():
            cells = [f"**{_fmt(row[t]['accuracy'])}**" if routing["assignment"].get(label) == t
                     else _fmt(row[t]["accuracy"]) for t in ids]
            cells += [_fmt(per[label]["usd"])] if label in per else []
            out.append(f"| {label} (n={row[ids[0]]['n']}) | " + " | ".join(cells) + " |")
    return out


def markdown(r: dict, plot: str | None) -> str:
    out = [f"# Stratos report — {r['task']}", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in _summary_rows(r)]
    st = r["strategy"]
    out += ["", "## Strategy", "", f"- decision: **{_fmt(st.get('name'))}** ({_fmt(st.get('mode'))})",
            f"- reason: {_fmt(st.get('reason'))}",
            f"- verified rationales kept / rejected: {_fmt(st.get('kept'))} / {_fmt(st.get('rejected'))}"]
    for ref in st.get("refused") or []:
        out.append(f"- refused: {ref}")
    out += _teachers_table(st.get("routing"))
    op = st.get("on_policy") or {}
    if op.get("scorer"):
        out.append(f"- on-policy KD: lambda {_fmt(op.get('rate'))}, scored by {op['scorer']}; "
                   f"{_fmt(op.get('sampled_tokens'))} tokens sampled at {_fmt(op.get('tokens_per_s'))} tokens/s"
                   + (f", {_fmt(op.get('lines_ok_share'))} of the judged lines right" if "lines_ok_share" in op else ""))
    out += _difficulty_table(_test_splits(r))
    plan = r["plan"]
    if plan.get("decisions"):
        out += ["", "## Decisions", "", "| decision | config key | value | origin |", "|---|---|---|---|"]
        out += [f"| {d['name']} | `{d['key']}` | {_fmt(d['value'])} | {d['origin']} |" for d in plan["decisions"]]
    best = plan.get("best_overall") or {}
    if best.get("needs"):
        out += ["", f"Best plan overall (not runnable here): {best['teacher']} -> {best['student']} on "
                    f"{best['server']}, score {_fmt(best.get('score'))}; it needs: {'; '.join(best['needs'])}."]
    if plan.get("baselines"):
        out += ["", "## Plan vs baselines", "", "| selection | deployment score | improvement of chosen plan |",
                "|---|---|---|"]
        imp = plan.get("improvement") or {}
        for name, b in plan["baselines"].items():
            out.append(f"| {name} | {_fmt((b or {}).get('score'))} | {_fmt(imp.get(name))} |")
    if plot:
        out += ["", f"![Pareto front]({plot})"]
    dist = r["metrics"].get("distill") or {}
    if dist:
        out += ["", "## Training", "", *[f"- {k}: {_fmt(v)}" for k, v in dist.items()]]
    curve = r.get("curve")
    if curve:
        keys = [k for k in ("train/loss", "val/loss", "train/lr", "train/tokens_per_s")
                if any(k in p for p in curve["points"])]
        out += ["", f"## Loss curve ({curve['logged_steps']} logged steps, all in the distill stage's metrics.csv)",
                "", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        out += [f"| {p['step']} | " + " | ".join(_fmt(p.get(k)) for k in keys) + " |" for p in curve["points"]]
    if r.get("ledger"):
        out += ["", "## Ledger: planner estimate vs measured", "", "| quantity | estimated | actual | ratio |",
                "|---|---|---|---|"]
        out += [f"| {x.get('quantity')} | {_fmt(x.get('estimated'))} | {_fmt(x.get('actual'))} | {_fmt(x.get('ratio'))} |"
                for x in r["ledger"]]
    if r.get("deploy"):
        out += ["", "## Deploy", "", *[f"- {k}: {_fmt(v)}" for k, v in r["deploy"].items()]]
    return "\n".join(out) + "\n"
