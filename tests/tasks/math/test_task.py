"""GSM8KTask / AimeTask: Hydra composition, the Task protocol, splits, grading, user errors."""

from __future__ import annotations

import json
import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from stratos.config import register_configs
from stratos.tasks.math.task import AimeTask, GSM8KTask, MathTask
from stratos.tasks.base import Task
from stratos.errors import UserError

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "..", "conf")


def task_from_conf(*overrides: str):
    """Compose only the task group (the other groups belong to other modules) and instantiate it."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.abspath(CONF), version_base="1.3"):
        cfg = compose(overrides=list(overrides))
    GlobalHydra.instance().clear()
    return instantiate(cfg.task, _convert_="all")


@pytest.mark.parametrize("name,cls", [("gsm8k", GSM8KTask), ("aime", AimeTask)])
def test_yaml_composes_to_the_task_and_fulfils_the_protocol(name, cls):
    t = task_from_conf(f"+task={name}", "task.n_train=30", "task.n_val=5", "task.n_test=10")
    assert type(t) is cls and t.name == name and isinstance(t, Task)
    splits = t.build_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 30, "val": 5, "test": 10}
    for row in splits["test"]:
        json.dumps(row)  # the data stage writes rows as JSONL
        assert row["synthetic"] is True and row["difficulty"] == f"steps={row['steps']}"
        assert t.rationale(row).endswith("\n" + t.answer_line(row))
        assert t.is_correct(row, t.rationale(row)) and t.extract(t.rationale(row)) == row["answer"]
        assert set(t.features(row)) >= {"steps", "rationale_chars"}


def test_schema_rejects_unknown_keys():
    with pytest.raises(Exception, match="no_such_key"):
        task_from_conf("+task=gsm8k", "task.no_such_key=1")


def test_synthetic_splits_deterministic_disjoint_balanced():
    t = GSM8KTask(n_train=200, n_val=20, n_test=60, min_steps=2, max_steps=4, seed=3)
    a = t.build_splits()
    b = GSM8KTask(n_train=200, n_val=20, n_test=60, min_steps=2, max_steps=4, seed=3).build_splits()
    assert a == b
    ids = [{r["id"] for r in a[s]} for s in ("train", "val", "test")]
    assert sum(map(len, ids)) == 280 and len(set().union(*ids)) == 280
    assert {r["difficulty"] for r in a["test"]} == {"steps=2", "steps=3", "steps=4"}
    assert [r["difficulty"] for r in a["test"]].count("steps=3") == 20  # cycled: equal buckets
    # more training data does not change the evaluation set
    assert GSM8KTask(n_train=500, n_val=20, n_test=60, seed=3).build_splits()["test"] == a["test"]
    assert GSM8KTask(n_train=200, n_val=20, n_test=60, seed=4).build_splits()["test"] != a["test"]


def test_aime_synthetic_answers_are_valid_aime_answers():
    t = AimeTask(n_train=50, n_val=5, n_test=50, min_steps=3, max_steps=6)
    for row in t.build_splits()["train"]:
        assert 0 <= int(row["answer"]) <= 999
    assert t.extract("Answer: 042") == "42" and t.extract("Answer: 4.2") is None
    with pytest.raises(UserError, match="task.max_value"):
        AimeTask(max_value=5000)


def test_source_file_through_the_task(tmp_path):
    rows = [{"question": f"Q{i}: 2 + {i}?", "answer": f"2+{i}=<<2+{i}={2 + i}>>{2 + i}\n#### {2 + i}"}
            for i in range(12)]
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = GSM8KTask(n_train=8, n_val=1, n_test=3, source=str(tmp_path / "g.jsonl"))
    s = t.build_splits()
    assert all(not r["synthetic"] for r in s["train"]) and t.max_new_tokens == 384
    row = s["test"][0]
    assert t.is_correct(row, f"I think the answer is {row['answer']}.") and not t.is_correct(row, "Answer: -1")
    with pytest.raises(UserError, match="task.n_train=20 but"):
        GSM8KTask(n_train=20, n_val=1, n_test=3, source=str(tmp_path / "g.jsonl")).build_splits()


def test_aime_source_max_new_tokens_and_difficulty(tmp_path):
    recs = [{"ID": f"2024-I-{i}", "Problem": f"Problem {i}", "Answer": i * 7} for i in range(1, 16)]
    (tmp_path / "a.json").write_text(json.dumps(recs))
    t = AimeTask(n_train=5, n_val=2, n_test=8, source=str(tmp_path / "a.json"))
    s = t.build_splits()
    assert t.max_new_tokens == 1024
    assert {r["difficulty"] for r in s["train"] + s["val"] + s["test"]} == {"pos=1-5", "pos=6-10", "pos=11-15"}


def test_hf_without_datasets_is_a_user_error_not_a_fallback(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UserError, match="datasets"):
        GSM8KTask(hf_dataset="openai/gsm8k", hf_config="main").build_splits()


@pytest.mark.parametrize("kwargs,key", [
    ({"min_steps": 0}, "task.min_steps"), ({"min_steps": 3, "max_steps": 2}, "task.max_steps"),
    ({"max_steps": 40}, "task.max_steps"), ({"distractor_rate": 1.5}, "task.distractor_rate"),
    ({"n_test": 0}, "task.n_test"), ({"max_value": 10}, "task.max_value"),
    ({"source": "a.jsonl", "hf_dataset": "openai/gsm8k"}, "task.source"),
])
def test_bad_config_values(kwargs, key):
    with pytest.raises(UserError) as e:
        MathTask(**kwargs)
    assert key in str(e.value) and "\n" not in str(e.value)


def test_corpus_and_max_new_tokens_fit_the_rationales():
    from stratos.models.tokenizer import train_tokenizer

    t = GSM8KTask(min_steps=1, max_steps=8, n_train=300, n_val=5, n_test=80)
    text = t.corpus()
    assert "Answer:" in text and "7 * 8 = 56." in text and "a third of: divide by 3" in text
    s = t.build_splits()
    # the student's own tokenizer: trained like the distill stage does (questions, rationales, corpus; ~400 entries)
    tok = train_tokenizer([r["question"] for r in s["train"]] + [r["rationale"] for r in s["train"]] + [text], 384)
    longest = max(len(tok(r["rationale"], add_special_tokens=False)["input_ids"]) for r in s["test"])
    assert longest + 1 <= t.max_new_tokens  # + EOS
