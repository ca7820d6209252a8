"""Offline generator of GSM8K-style multi-step arithmetic word problems with verified rationales.

A problem is a small state machine walked for exactly `n_steps` arithmetic operations:

    state = (subject, value, unit: count|money, noun, other person's count)
    start sentence -> op_1 -> ... -> op_k -> question about the final state

Each op writes one story sentence and 1-2 rationale lines `label: a op b = c` (the number of
lines is the problem's difficulty, GSM8K-style "steps"), e.g.

    Chen buys 9 buckets of socks with 10 socks in each bucket. Noah has 14 fewer socks than
    Chen. Noah loses 30 of them. How many socks does Noah end up with?
    ->  socks: 9 * 10 = 90
        Noah: 90 - 14 = 76
        lost: 76 - 30 = 46
        Answer: 46

Values are computed twice, independently: by the state machine (Python ints) and by
re-evaluating every rationale line's text with `safe_eval`; `verify` also checks that every
operand is grounded (a number in the question, a number word, 100 for a percent, or an earlier
result). A problem that fails is a bug and raises. Numbers stay small (opening amounts <= 120,
other operands <= 30, multipliers <= 12, every result in 2..`max_value`) so a tiny student can
learn the arithmetic; names, nouns, verbs, sentence frames,
linkers, op order and optional distractor sentences vary so a model cannot memorise answers.
Deterministic: the same `random.Random` state gives the same problem.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable, Optional

from stratos.tasks.math import words as W
from stratos.tasks.math.verify import verify

Line = tuple[str, str, int]  # (label, expression, result)


@dataclass(frozen=True)
class State:
    subject: str
    value: int
    unit: str  # "count" | "money"
    noun: tuple[str, str]  # (plural, singular) of what is counted
    container: bool  # noun is a container (box, bag) that can hold items
    other: Optional[tuple[str, int]]  # the previous subject and its count (for "together")
    names: tuple[str, ...]  # people already in the story


@dataclass
class Step:
    sentence: str
    lines: list[Line]
    state: State
    question: Optional[str] = None  # final-only ops ask their own question


class _Ctx:
    def __init__(self, rng: random.Random, max_value: int):
        self.rng, self.max_value = rng, max_value

    def ok(self, *values: int) -> bool:
        # >= 2: results of 0 or 1 ("each friend gets 1") make the answer guessable
        return all(2 <= v <= self.max_value for v in values)

    def new_name(self, st: State) -> str:
        return self.rng.choice([n for n in W.NAMES if n not in st.names])

    def pick(self, cands, pred: Callable = lambda _: True):
        good = [c for c in cands if pred(c)]
        return self.rng.choice(good) if good else None


def _things(st: State) -> str:
    return "money" if st.unit == "money" else st.noun[0]


# ---------------------------------------------------------------- ops: (name, cost, unit, final, fn)
def op_gain(c: _Ctx, st: State) -> Optional[Step]:
    k = c.pick(range(2, 31), lambda k: c.ok(st.value + k))
    if k is None:
        return None
    if st.unit == "money":
        src = c.rng.choice(W.EARN_FROM)
        s, label = c.rng.choice([(f"{st.subject} earns ${k} more from {src}.", "earned"),
                                 (f"{st.subject} gets ${k} for {src}.", "got")])
    else:
        verb, label = c.rng.choice(W.GAIN_VERBS)
        if c.rng.random() < 0.7:
            s = f"{st.subject} {verb} {k} more {st.noun[0]}."
        else:  # a new giver joins the story, so later comparisons never reuse the name
            giver = c.new_name(st)
            s, label = f"{giver} gives {st.subject} {k} {st.noun[0]}.", "given"
            st = replace(st, names=st.names + (giver,))
    return Step(s, [(label, f"{st.value} + {k}", st.value + k)], replace(st, value=st.value + k))


def op_lose(c: _Ctx, st: State) -> Optional[Step]:
    k = c.pick(range(2, 31), lambda k: c.ok(st.value - k))
    if k is None:
        return None
    if st.unit == "money":
        s = f"{st.subject} spends ${k} on {c.rng.choice(W.SPEND_ON)}."
        label = "spent"
    else:
        verb, label = c.rng.choice(W.LOSE_VERBS)
        s = c.rng.choice([f"{st.subject} {verb} {k} of them.", f"{st.subject} {verb} {k} {st.noun[0]}."])
    return Step(s, [(label, f"{st.value} - {k}", st.value - k)], replace(st, value=st.value - k))


def _compare(c: _Ctx, st: State, kind: str) -> Optional[Step]:
    """A new person whose count is defined from the current subject's: times, more, fewer."""
    o, s0, v = c.new_name(st), st.subject, st.value
    money = st.unit == "money"
    if kind == "times":
        k = c.pick(range(2, 6), lambda k: c.ok(v * k))
        if k is None:
            return None
        many = "as much money as" if money else f"as many {st.noun[0]} as"
        times = "twice" if k == 2 and c.rng.random() < 0.5 else f"{k} times"
        s, expr, r = f"{o} has {times} {many} {s0}.", f"{v} * {k}", v * k
    else:
        sign = 1 if kind == "more" else -1
        k = c.pick(range(2, 31), lambda k: c.ok(v + sign * k))
        if k is None:
            return None
        word = "more" if sign > 0 else ("less" if money else "fewer")
        what = f"${k} {word}" if money else f"{k} {word} {st.noun[0]}"
        s, expr, r = f"{o} has {what} than {s0}.", f"{v} {'+' if sign > 0 else '-'} {k}", v + sign * k
    nxt = replace(st, subject=o, value=r, other=(s0, v), names=st.names + (o,))
    return Step(s, [(o, expr, r)], nxt)


def op_times(c, st):
    return _compare(c, st, "times")


def op_more(c, st):
    return _compare(c, st, "more")


def op_fewer(c, st):
    return _compare(c, st, "fewer")


def op_merge(c: _Ctx, st: State) -> Optional[Step]:
    """The current subject hands everything to the previous one (who becomes the subject)."""
    if st.other is None or not c.ok(st.other[1] + st.value):
        return None
    who, had = st.other
    r = had + st.value
    s = f"{st.subject} gives all of {'the money' if st.unit == 'money' else 'them'} to {who}."
    return Step(s, [(who, f"{had} + {st.value}", r)], replace(st, subject=who, value=r, other=None))


def op_together(c: _Ctx, st: State) -> Optional[Step]:
    if st.other is None or not c.ok(st.other[1] + st.value):
        return None
    who, had = st.other
    q = (f"How much money do {who} and {st.subject} have together?" if st.unit == "money"
         else f"How many {st.noun[0]} do {who} and {st.subject} have together?")
    return Step("", [("together", f"{had} + {st.value}", had + st.value)], st, question=q)


def op_fraction_keep(c: _Ctx, st: State) -> Optional[Step]:
    f = c.pick(W.FRACTIONS, lambda f: st.value * f[1] % f[2] == 0 and c.ok(st.value * f[1] // f[2]))
    if f is None:
        return None
    word, a, b = f
    r = st.value * a // b
    expr = f"{st.value} / {b}" if a == 1 else f"{st.value} * {a} / {b}"
    s = f"{st.subject} keeps only {word} of {'the money' if st.unit == 'money' else 'them'}."
    return Step(s, [("kept", expr, r)], replace(st, value=r))


def op_fraction_lose(c: _Ctx, st: State) -> Optional[Step]:
    f = c.pick(W.FRACTIONS, lambda f: st.value * f[1] % f[2] == 0 and c.ok(st.value - st.value * f[1] // f[2]))
    if f is None:
        return None
    word, a, b = f
    x = st.value * a // b
    expr = f"{st.value} / {b}" if a == 1 else f"{st.value} * {a} / {b}"
    if st.unit == "money":
        s = f"{st.subject} spends {word} of the money on {c.rng.choice(W.SPEND_ON)}."
    else:
        s = f"{st.subject} {c.rng.choice(W.LOSE_VERBS)[0]} {word} of them."
    lines = [("part", expr, x), ("left", f"{st.value} - {x}", st.value - x)]
    return Step(s, lines, replace(st, value=st.value - x))


def op_percent_lose(c: _Ctx, st: State) -> Optional[Step]:
    p = c.pick(W.PERCENTS, lambda p: st.value * p % 100 == 0 and c.ok(st.value - st.value * p // 100))
    if p is None:
        return None
    x = st.value * p // 100
    if st.unit == "money":
        s = f"{st.subject} spends {p}% of the money."
    else:
        s = c.rng.choice([f"{st.subject} sells {p}% of them.", f"{p}% of the {st.noun[0]} are broken and "
                          f"{st.subject} throws them away."])
    lines = [("part", f"{st.value} * {p} / 100", x), ("left", f"{st.value} - {x}", st.value - x)]
    return Step(s, lines, replace(st, value=st.value - x))


def op_pack(c: _Ctx, st: State) -> Optional[Step]:
    if st.container:
        return None
    k = c.pick(range(2, 13), lambda k: st.value % k == 0 and c.ok(st.value // k) and st.value // k > 1)
    if k is None:
        return None
    box = c.rng.choice(W.CONTAINERS)
    s = f"{st.subject} packs the {st.noun[0]} into {box[0]} of {k}."
    return Step(s, [(box[0], f"{st.value} / {k}", st.value // k)], replace(st, value=st.value // k, noun=box,
                                                                            container=True, other=None))


def op_fill(c: _Ctx, st: State) -> Optional[Step]:
    if not st.container:
        return None
    k = c.pick(range(2, 13), lambda k: c.ok(st.value * k))
    if k is None:
        return None
    item = c.rng.choice(W.ITEMS)
    s = f"Each {st.noun[1]} holds {k} {item[0]}."
    return Step(s, [(item[0], f"{st.value} * {k}", st.value * k)], replace(st, value=st.value * k, noun=item,
                                                                            container=False, other=None))


def op_sell(c: _Ctx, st: State) -> Optional[Step]:
    k = c.pick(range(2, 10), lambda k: c.ok(st.value * k))
    if k is None:
        return None
    s = c.rng.choice([f"{st.subject} sells them for ${k} each.", f"{st.subject} sells each {st.noun[1]} for ${k}."])
    return Step(s, [("money", f"{st.value} * {k}", st.value * k)],
                replace(st, value=st.value * k, unit="money", other=None))


def op_buy(c: _Ctx, st: State) -> Optional[Step]:
    k = c.pick(range(2, 13), lambda k: st.value % k == 0 and c.ok(st.value // k))
    if k is None:
        return None
    item = c.rng.choice(W.ITEMS)
    s = f"{st.subject} spends all of it on {item[0]} that cost ${k} each."
    return Step(s, [(item[0], f"{st.value} / {k}", st.value // k)],
                replace(st, value=st.value // k, unit="count", noun=item, container=False, other=None))


def op_split(c: _Ctx, st: State) -> Optional[Step]:
    k = c.pick(range(2, 9), lambda k: st.value % k == 0 and c.ok(st.value // k))
    if k is None:
        return None
    grp = c.rng.choice(W.GROUPS)
    s = f"{st.subject} shares the {_things(st)} equally among {k} {grp[0]}."
    q = (f"How much money does each {grp[1]} get?" if st.unit == "money"
         else f"How many {st.noun[0]} does each {grp[1]} get?")
    return Step(s, [("each", f"{st.value} / {k}", st.value // k)], replace(st, value=st.value // k), question=q)


# (op, cost in lines, units it applies to, final-only)
OPS: tuple[tuple[Callable, int, tuple[str, ...], bool], ...] = (
    (op_gain, 1, ("count", "money"), False), (op_lose, 1, ("count", "money"), False),
    (op_times, 1, ("count", "money"), False), (op_more, 1, ("count", "money"), False),
    (op_fewer, 1, ("count", "money"), False), (op_merge, 1, ("count", "money"), False),
    (op_together, 1, ("count", "money"), True), (op_fraction_keep, 1, ("count", "money"), False),
    (op_fraction_lose, 2, ("count", "money"), False), (op_percent_lose, 2, ("count", "money"), False),
    (op_pack, 1, ("count",), False), (op_fill, 1, ("count",), False), (op_sell, 1, ("count",), False),
    (op_buy, 1, ("money",), False), (op_split, 1, ("count", "money"), True),
)


# ---------------------------------------------------------------- starts and questions
def _start(c: _Ctx, remaining: int) -> tuple[str, list[Line], State]:
    """Opening sentence; a compound opening (k groups of x) already costs one step."""
    name, rng = c.rng.choice(W.NAMES), c.rng
    kind = rng.choice(["count", "count", "money", "box"] + (["groups", "rate"] if remaining >= 1 else []))
    item = rng.choice(W.ITEMS)
    base = State(name, 0, "count", item, False, None, (name,))
    if kind == "count":
        x = rng.randint(6, 60)
        s = rng.choice([f"{name} has {x} {item[0]}.", f"{name} collects {x} {item[0]}.",
                        f"There are {x} {item[0]} in {name}'s room.", f"{name} starts the day with {x} {item[0]}."])
        return s, [], replace(base, value=x)
    if kind == "money":
        x = rng.randint(10, 120)
        s = rng.choice([f"{name} has ${x}.", f"{name} saved ${x}.", f"{name} starts the week with ${x}."])
        return s, [], replace(base, value=x, unit="money")
    if kind == "box":
        x, box = rng.randint(2, 12), rng.choice(W.CONTAINERS)
        return f"{name} has {x} {box[0]}.", [], replace(base, value=x, noun=box, container=True)
    k, x = rng.randint(2, 9), rng.randint(2, 12)
    if kind == "groups":
        box = rng.choice(W.CONTAINERS)
        s = f"{name} buys {k} {box[0]} of {item[0]} with {x} {item[0]} in each {box[1]}."
        return s, [(item[0], f"{k} * {x}", k * x)], replace(base, value=k * x)
    days = rng.choice(["days", "weeks"])
    s = f"{name} gets {x} {item[0]} every {days[:-1]} for {k} {days}."
    return s, [(item[0], f"{x} * {k}", k * x)], replace(base, value=k * x)


def _question(c: _Ctx, st: State) -> str:
    if st.unit == "money":
        return c.rng.choice([f"How much money does {st.subject} have now?",
                             f"How many dollars does {st.subject} have in the end?"])
    return c.rng.choice([f"How many {st.noun[0]} does {st.subject} have now?",
                         f"How many {st.noun[0]} does {st.subject} have in the end?",
                         f"How many {st.noun[0]} does {st.subject} end up with?"])


def _distractor(c: _Ctx, st: State, used_nouns: set[str]) -> str:
    who = c.rng.choice(st.names)
    other = c.rng.choice([n for n in W.ITEMS if n[0] not in used_nouns])
    return c.rng.choice([f"{who} is {c.rng.randint(7, 15)} years old.",
                         f"{who}'s school is {c.rng.randint(2, 9)} miles away.",
                         f"{who} also has {c.rng.randint(2, 30)} {other[0]}."])


def _with_linker(c: _Ctx, s: str, st_names: tuple[str, ...]) -> str:
    if s and s.split()[0] in st_names and c.rng.random() < 0.35:
        return f"{c.rng.choice(W.LINKERS)} {s}"
    return s


def _attempt(c: _Ctx, n_steps: int, distractor_rate: float) -> Optional[dict]:
    s0, lines, st = _start(c, n_steps)
    sentences, ops, question = [s0], [], None
    while len(lines) < n_steps:
        left = n_steps - len(lines)
        cands = [o for o in OPS if o[1] <= left and st.unit in o[2] and (not o[3] or o[1] == left)
                 and not (ops and o[0].__name__[3:] == ops[-1])]  # no op twice in a row
        c.rng.shuffle(cands)
        for fn, _, _, _ in cands:
            step = fn(c, st)
            if step is not None:
                break
        else:
            return None  # dead end (e.g. nothing divides): the caller draws a new problem
        sentences.append(_with_linker(c, step.sentence, st.names))
        lines += step.lines
        ops.append(fn.__name__[3:])
        st, question = step.state, step.question
    if c.rng.random() < distractor_rate:
        used = {n for n, _ in W.ITEMS if n in " ".join(sentences)}
        sentences.insert(c.rng.randint(1, len(sentences)), _distractor(c, st, used))
    question = question or _question(c, st)
    text = " ".join(s for s in sentences if s) + " " + question
    answer = lines[-1][2]
    rationale = "\n".join(f"{lab}: {e} = {r}" for lab, e, r in lines) + f"\nAnswer: {answer}"
    return {"question": text, "answer": str(answer), "rationale": rationale, "steps": n_steps, "ops": ops}


def generate_problem(rng: random.Random, n_steps: int, max_value: int = 999, distractor_rate: float = 0.0) -> dict:
    """One verified problem with exactly `n_steps` rationale lines: question, answer, rationale, steps, ops."""
    c = _Ctx(rng, max_value)
    for _ in range(1000):
        p = _attempt(c, n_steps, distractor_rate)
        if p is not None:
            errors = verify(p["question"], p["rationale"], p["answer"])
            if errors:
                raise AssertionError(f"generator produced an unverifiable problem: {errors}: {p}")
            return p
    raise RuntimeError(f"no problem with {n_steps} steps found in 1000 attempts")
