"""Rejection-sampled sequence distillation rows from a real OpenAI-compatible HTTP server whose scripted
rationales are right or wrong per (question, draw), graded by a tiny addition Task."""

from __future__ import annotations

import re

import pytest

from stratos.tasks.base import Task
from stratos.distill.rejection import sequence_distillation_rows
from stratos.errors import UserError
from stratos.models.openai_teacher import OpenAITeacher
from tests.models.chat_server import ChatServer, Reply

RULES = "Rules: to add two numbers, count on from the first."


class AddTask:
    """a + b = ? with a strict verifier on the last 'Answer: N' line."""

    name = "add"
    max_new_tokens = 32

    def __init__(self, pairs: list[tuple[int, int]]):
        self.rows = [{"id": f"add-{a}-{b}", "question": f"What is {a} + {b}?", "answer": str(a + b),
                      "rationale": f"{a} + {b} = {a + b}.\nAnswer: {a + b}", "difficulty": "steps=1"}
                     for a, b in pairs]

    def build_splits(self):
        return {"train": self.rows, "val": [], "test": []}

    def rationale(self, row):
        return row["rationale"]

    def answer_line(self, row):
        return f"Answer: {row['answer']}"

    def extract(self, text):
        m = re.findall(r"Answer:\s*(-?\d+)", text)
        return int(m[-1]) if m else None

    def is_correct(self, row, text):
        return self.extract(text) == int(row["answer"])

    def features(self, row):
        return {"rationale_len": float(len(row["rationale"]))}

    def corpus(self):
        return RULES


def scripted(plan: dict[int, list[str]]):
    """Script: for the question on a + b with a = key, draw d (request seed) answers plan[a][d]:
    'right', 'wrong' or 'error' (HTTP 500, every retry)."""
    def script(prompt, attempt, body):
        a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", prompt).groups())
        seed = body.get("seed", 0)
        kind = plan[a][min(seed, len(plan[a]) - 1)]
        if kind == "error":
            return Reply(kind="status", status=500, message="teacher crashed")
        total = a + b if kind == "right" else a + b + 1
        return Reply(text=f"draw {seed}: {a} plus {b} makes {total}.\nAnswer: {total}")
    return script


def teacher(url: str, **kw) -> OpenAITeacher:
    return OpenAITeacher(name="api", base_url=url, model="m", api_key_env="", max_retries=1, backoff_base_s=0.01,
                         backoff_max_s=0.02, **kw)


PLAN = {1: ["right"], 2: ["wrong", "right"], 3: ["wrong"], 4: ["error"], 5: ["error", "right"]}


def test_task_fits_the_protocol():
    assert isinstance(AddTask([(1, 1)]), Task)


def test_rejection_sampling_keeps_only_verified_rationales():
    task = AddTask([(a, 10) for a in PLAN])
    with ChatServer(scripted(PLAN)) as srv:
        kept, stats = sequence_distillation_rows(teacher(srv.url), task, task.rows, verify=True, n_samples=3)
    assert [r["id"] for r in kept] == ["add-1-10", "add-2-10", "add-5-10"]
    assert [r["rationale"] for r in kept] == ["draw 0: 1 plus 10 makes 11.\nAnswer: 11",
                                              "draw 1: 2 plus 10 makes 12.\nAnswer: 12",
                                              "draw 1: 5 plus 10 makes 15.\nAnswer: 15"]
    assert [r["rationale_draws"] for r in kept] == [1, 2, 2]
    assert all(r["rationale_source"] == "teacher:api" and task.is_correct(r, r["rationale"]) for r in kept)
    assert kept[0]["answer"] == "11" and kept[0]["question"] == "What is 1 + 10?"  # the row's other keys survive
    assert task.rows[0]["rationale"] == "1 + 10 = 11.\nAnswer: 11"  # inputs untouched
    assert stats == {"kept": 3, "rejected": 1, "failed": 1, "draws": 5 + 4 + 2, "acceptance": 0.6}
    # draw 0 is greedy and unseeded; redraws are seeded samples at the resample temperature
    first = [r["body"] for r in srv.log if r["seed"] == 0]
    redraws = [r["body"] for r in srv.log if r["seed"] > 0]
    assert all(b["temperature"] == 0.0 and "seed" not in b for b in first)
    assert redraws and all(b["temperature"] == 0.7 for b in redraws)
    # a row is not asked again once it has a verified rationale
    assert srv.count("What is 1 + 10?") == 1 and srv.count("What is 3 + 10?") == 3


def test_without_verification_the_first_answer_is_kept():
    task = AddTask([(a, 10) for a in PLAN])
    with ChatServer(scripted(PLAN)) as srv:
        kept, stats = sequence_distillation_rows(teacher(srv.url), task, task.rows, verify=False, n_samples=3)
    assert [r["id"] for r in kept] == ["add-1-10", "add-2-10", "add-3-10"]
    assert not task.is_correct(kept[1], kept[1]["rationale"])  # wrong, but unverified
    assert stats == {"kept": 3, "rejected": 0, "failed": 2, "draws": 5, "acceptance": 0.6}


def test_a_redraw_that_fails_entirely_counts_its_rows_as_failed():
    task = AddTask([(1, 10), (4, 10)])
    with ChatServer(scripted(PLAN)) as srv:
        kept, stats = sequence_distillation_rows(teacher(srv.url), task, task.rows, verify=True, n_samples=3)
    assert [r["id"] for r in kept] == ["add-1-10"]
    assert stats == {"kept": 1, "rejected": 0, "failed": 1, "draws": 4, "acceptance": 0.5}
    assert srv.count("What is 4 + 10?") == 6  # 3 draws x (1 try + 1 retry)


def test_rules_are_injected_into_the_teacher_prompt_only():
    task = AddTask([(1, 2)])
    with ChatServer(scripted({1: ["right"]})) as srv:
        kept, _ = sequence_distillation_rows(teacher(srv.url), task, task.rows, verify=True, n_samples=1,
                                             rules_in_prompt=True)
    assert srv.prompts() == [f"{RULES}\n\nWhat is 1 + 2?"]
    assert kept[0]["question"] == "What is 1 + 2?"


def test_sampling_teacher_keeps_its_own_temperature():
    task = AddTask([(2, 1)])
    with ChatServer(scripted({2: ["wrong", "right"]})) as srv:
        kept, _ = sequence_distillation_rows(teacher(srv.url, temperature=0.3), task, task.rows, verify=True,
                                             n_samples=2)
    assert len(kept) == 1 and [r["body"]["temperature"] for r in srv.log] == [0.3, 0.3]


def test_resume_from_cache_repeats_no_draw(tmp_path):
    task = AddTask([(a, 10) for a in (1, 2, 3)])
    plan = {1: ["right"], 2: ["wrong", "right"], 3: ["wrong"]}
    with ChatServer(scripted(plan)) as srv:
        first = sequence_distillation_rows(teacher(srv.url), task, task.rows, verify=True, n_samples=2,
                                           cache_dir=str(tmp_path))
        n_calls = len(srv.log)
        second = sequence_distillation_rows(teacher(srv.url), task, task.rows, verify=True, n_samples=2,
                                            cache_dir=str(tmp_path))
    assert n_calls == 5 and len(srv.log) == n_calls  # every draw came from the cache the second time
    assert first == second


def test_server_down_is_a_user_error_naming_the_url():
    task = AddTask([(1, 1)])
    with ChatServer() as srv:
        url = srv.url
    with pytest.raises(UserError, match=re.escape(url)):
        sequence_distillation_rows(teacher(url), task, task.rows, verify=True, n_samples=2)


def test_bad_n_samples_is_a_user_error():
    with pytest.raises(UserError, match="n_samples"):
        sequence_distillation_rows(object(), AddTask([(1, 1)]), [], verify=True, n_samples=0)
