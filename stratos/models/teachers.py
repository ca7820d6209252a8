"""Several teachers behind one teacher interface: each training row is answered by its own teacher.

Design (how a user names several teachers with Hydra)
-----------------------------------------------------
`teacher` stays a config group of one selection. Hydra merges two selections of one group into one node,
so several teachers are several *package-placed* selections of that same group, each under its own id in
the `teachers` node (a dict id -> teacher config, schema in stratos/config/teachers.py):

    python -m stratos +task=mahjong \
        +teacher@teachers.low=tiny_teacher  teachers.low.name_or_path=DIR_A \
        +teacher@teachers.high=tiny_teacher teachers.high.name_or_path=DIR_B \
        route.by=auto                       # or route.by=slice '++route.slices={0-2: low, 3-9: high}'
                                            # or route.by=column route.column=teacher_id

  - every member is composed from a `conf/teacher/` option with its own defaults list, so it is typed by
    its kind's dataclass (HFTeacherConfig, ...) exactly as the single `teacher` group is; per-member
    overrides are ordinary dotted keys (`teachers.low.max_new_tokens=64`); an experiment YAML lists the same
    selections in its defaults (`- /teacher@teachers.low: tiny_teacher`);
  - the id (`low`, `high`) is what `route` names, what metrics carry (`distill/teacher_share/<id>`) and what
    the checkpoint's teacher manifest records; ids are lower-case identifiers;
  - `teachers` empty (the default) = the single-teacher path, unchanged: `teacher` is used, and `teachers` /
    `route` stay out of the distill stage's hash (stratos/pipeline.py), so existing runs keep their hashes;
  - `teachers` set = `teacher` is ignored for training (the routed set replaces it);
  - `route` (RouteConfig): by=column reads each row's `route.column`; by=slice maps the task's slices
    (`Task.slice_of`, for Mahjong the number of winning tiles) to ids, keys a label ("3"), a range ("0-2") or
    an open range ("7+"); by=auto probes every member per slice on held-out rows and gives each slice its best
    teacher, or with `route.tolerance` > 0 the cheapest (smallest `card.params_b`) within that accuracy margin of
    the best (stratos/distill/routing.py); `route.default` takes rows no rule names;
  - `route.budget_usd` (by=auto): the teacher work of the training rows, priced per slice and teacher in USD,
    stays within it; the slices go to the teachers that give the most expected correct answers under it, found
    exactly (stratos/distill/route_budget.py); `route.usd_per_mtok.<id>` prices a member per token.
`validate_teachers` (called by stratos/checks.py before any work) refuses, in one line: a member with a
missing or bad value (keys `teachers.<id>.*`), an id that is not an identifier, a route naming an id not in
`teachers`, a bad slice key, route settings without teachers, and the modes several teachers cannot share
(hidden-state KD, cross-tokenizer KD, on-policy).

`RoutedTeacher` is the teacher the distill stage then sees: `answer` sends each row to its routed member
(answers are cached, so the strategy's probe and the routing probe ask each teacher a question once),
`capabilities` are those every member offers (logit KD only when every member is white-box with the same
vocabulary, else sequence KD from each row's own teacher).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from stratos.errors import UserError, bad_value

ID = re.compile(r"^[a-z][a-z0-9_]*$")
SLICE_KEY = re.compile(r"^(\d+)(?:-(\d+)|(\+))?$|^[A-Za-z_][\w.]*$")


def route_ids(route) -> list[tuple[str, str]]:
    """(key, teacher id) pairs that `route` names: its slice map and its default."""
    pairs = [(f"route.slices.{k}", str(v)) for k, v in (route.slices or {}).items()]
    if route.default is not None:
        pairs.append(("route.default", str(route.default)))
    return pairs + [(f"route.usd_per_mtok.{k}", str(k)) for k in (route.get("usd_per_mtok") or {})]


def validate_teachers(cfg) -> None:
    """Checks of `teachers` + `route` (UserError, one line); nothing is loaded."""
    from stratos.config import RouteConfig
    from stratos.models.teacher import validate_teacher

    teachers, route = cfg.get("teachers") or {}, cfg.route
    if not teachers:
        default = RouteConfig()
        for k in ("by", "column", "slices", "default", "probe_n", "tolerance", "budget_usd", "usd_per_mtok"):
            if route[k] != getattr(default, k):
                raise bad_value(f"route.{k}", str(route[k]) if k == "by" else route[k], "route settings only with several teachers: "
                                "+teacher@teachers.<id>=<option> for each")
        return
    for tid, t in teachers.items():
        if not ID.match(str(tid)):
            raise bad_value(f"teachers.{tid}", str(tid), "a lower-case identifier as teacher id, e.g. low, high_1")
        if t is None or not hasattr(t, "get") or "kind" not in t:
            raise bad_value(f"teachers.{tid}", t, "a teacher option: +teacher@teachers.<id>=<option>")
        validate_teacher(t, key=f"teachers.{tid}")
        if t.kind == "engine" and t.name not in ("task_engine", f"{cfg.task.name}_engine"):
            raise bad_value(f"teachers.{tid}", t.name, f"the rules engine of +task={cfg.task.name} (task_engine), "
                            "or an hf or openai teacher")
    ids = sorted(teachers)
    for key, tid in route_ids(route):
        if tid not in teachers:
            raise bad_value(key, tid, f"a teacher id in teachers: {', '.join(ids)}")
    for k in route.slices or {}:
        if not SLICE_KEY.match(str(k)):
            raise bad_value(f"route.slices.{k}", str(k), "a task slice label, a range a-b or an open range a+")
    if route.by == "slice" and not route.slices:
        raise bad_value("route.slices", "{}", "a map slice -> teacher id with route.by=slice, e.g. "
                        "'++route.slices={0-2: low, 3-9: high}'")
    if route.by == "column" and not str(route.column).strip():
        raise bad_value("route.column", route.column, "the row field naming each row's teacher id")
    if route.by == "column" and cfg.task.get("source"):
        check_source_ids(str(cfg.task.source), str(route.column), teachers, route.default)
    if int(route.probe_n) < 1:
        raise bad_value("route.probe_n", route.probe_n, "an integer >= 1 (held-out rows per slice and teacher)")
    if not 0.0 <= float(route.tolerance) <= 1.0:
        raise bad_value("route.tolerance", route.tolerance, "0 <= accuracy margin <= 1")
    if route.budget_usd is not None and not float(route.budget_usd) > 0:
        raise bad_value("route.budget_usd", route.budget_usd, "dollars > 0, or null for no limit")
    if route.budget_usd is not None and route.by != "auto":
        raise bad_value("route.budget_usd", route.budget_usd, "a budget only with route.by=auto (the probe prices "
                        "each slice's teachers; slice and column routes are fixed)")
    for k, v in (route.usd_per_mtok or {}).items():
        if not float(v) >= 0:
            raise bad_value(f"route.usd_per_mtok.{k}", v, "dollars per million tokens >= 0")
    al = cfg.strategy.alignment
    if str(al.mode) in ("hidden", "cross_tokenizer"):
        raise bad_value("strategy.alignment.mode", str(al.mode), "auto, logit or sequence with several teachers "
                        "(each row's KD comes from its own teacher)")
    if float(al.hidden_weight) > 0:
        raise bad_value("strategy.alignment.hidden_weight", al.hidden_weight, "0 with several teachers")
    # on-policy KD with several teachers (white-box members only): stratos/distill/on_policy.py validate_on_policy


def check_source_ids(source: str, column: str, teachers, default) -> None:
    """route.by=column with a user JSONL (`task.source`): every teacher id the file names is in `teachers`, and a row
    without one has `route.default` (read before any work; a file that does not open is the task's check)."""
    import json

    import fsspec

    try:
        with fsspec.open(source, "r", encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    tid = json.loads(line).get(column)
                except (json.JSONDecodeError, AttributeError):
                    return  # not this check's business: the task's reader refuses the line
                if tid in (None, "") and default is None:
                    raise bad_value("route.default", None, f"a teacher id: {source}:{i} names no {column}")
                if tid not in (None, "") and str(tid) not in teachers:
                    raise bad_value("route.column", column, f"{source}:{i} names teacher {tid!r}, not in teachers: "
                                    f"{', '.join(sorted(teachers))}")
    except FileNotFoundError:
        return


def check_members_reachable(cfg, timeout_s: float = 3.0) -> None:
    """Before training: every black-box member's server accepts a TCP connection (UserError, one line)."""
    for tid, t in (cfg.get("teachers") or {}).items():
        if t.kind == "openai":
            check_reachable(f"teachers.{tid}.base_url", str(t.base_url), timeout_s)


def check_reachable(key: str, base_url: str, timeout_s: float = 3.0) -> None:
    """The server at `base_url` accepts a TCP connection, else UserError naming `key` (one line, in seconds rather
    than after the client's retries)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(base_url)
    try:
        socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout_s).close()
    except OSError as e:
        raise bad_value(key, base_url, f"a reachable OpenAI-compatible server ({type(e).__name__}: {e})") from None


def build_members(cfg) -> dict[str, Any]:
    """id -> teacher object, in the order the ids were composed."""
    from hydra.utils import instantiate

    return {str(tid): instantiate(t, _convert_="all") for tid, t in cfg.teachers.items()}


def _same_vocab(tokenizers: list) -> bool:
    first = tokenizers[0].get_vocab()
    return all(t.get_vocab() == first for t in tokenizers[1:])


class RoutedTeacher:
    """Members behind one teacher: `answer` sends each row to `route_of(row)`'s member."""

    kind = "routed"

    def __init__(self, members: dict[str, Any]) -> None:
        if not members:
            raise UserError("no teacher in 'teachers' (allowed: +teacher@teachers.<id>=<option> for each)")
        self.members = dict(members)
        self.ids = list(self.members)
        self.name = "+".join(self.ids)
        self.route_of: Callable[[dict], str] | None = None  # set by stratos/distill/routing.py
        self._answers: dict[tuple[str, str, bool], Any] = {}  # (id, question, rules) -> TeacherAnswer
        caps = [frozenset(getattr(m, "capabilities", {"text"})) for m in self.members.values()]
        common = frozenset.intersection(*caps)
        toks = [getattr(m, "tokenizer", None) for m in self.members.values()]
        self.same_vocab = "logits" in common and all(t is not None for t in toks) and _same_vocab(toks)
        # logit KD needs one vocabulary across members (each row's logits come from its own teacher)
        self.capabilities = common if self.same_vocab else common - {"logits", "hidden"}
        self.tokenizer = toks[0] if self.same_vocab else None
        self.max_new_tokens = min(int(getattr(m, "max_new_tokens", 1 << 30)) for m in self.members.values())
        # black-box members' top-k logprobs become token-level KD on their own rows (the others' rows: CE);
        # one k for all, the smallest any member returns
        tops = [int(getattr(m, "top_logprobs", 0) or 0) for m in self.members.values()]
        self.top_logprobs = min((t for t in tops if t > 0), default=0)

    def index(self, tid: str) -> int:
        return self.ids.index(tid)

    def answer_by(self, tid: str, task, rows: list[dict], rules_in_prompt: bool = False) -> list:
        """Member `tid`'s answers to `rows`, each question asked once per run."""
        from stratos.models.teacher import ask

        todo = [r for r in rows if (tid, r["question"], rules_in_prompt) not in self._answers]
        if todo:
            for r, a in zip(todo, ask(self.members[tid], task, todo, rules_in_prompt=rules_in_prompt)):
                self._answers[(tid, r["question"], rules_in_prompt)] = a
        return [self._answers[(tid, r["question"], rules_in_prompt)] for r in rows]

    def answer(self, task, rows: list[dict], rules_in_prompt: bool = False) -> list:
        if self.route_of is None:
            raise RuntimeError("RoutedTeacher.answer before routing (stratos/distill/routing.py sets route_of)")
        out: list = [None] * len(rows)
        for tid in self.ids:
            idx = [i for i, r in enumerate(rows) if self.route_of(r) == tid]
            for i, a in zip(idx, self.answer_by(tid, task, [rows[i] for i in idx], rules_in_prompt)):
                out[i] = a
        return out
