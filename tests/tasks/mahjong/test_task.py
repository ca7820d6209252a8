import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from stratos.config import register_configs
from stratos.tasks.mahjong.jsonl import write_benchmark
from stratos.tasks.mahjong.rationale import format_rationale, verify_rationale
from stratos.tasks.mahjong.task import MahjongTask
from stratos.tasks.mahjong.tiles import UNICODE, parse_hand
from stratos.tasks.mahjong.waits import solve
from stratos.tasks.base import Task
from stratos.errors import UserError

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "..", "conf")


@pytest.fixture(scope="module")
def task():
    return MahjongTask(n_train=300, n_val=50, n_test=100, seed=1, variant="riichi",
                       wait_distribution={"1": 0.3, "2": 0.3, "3": 0.2, "4": 0.1, "5": 0.1})


@pytest.fixture(scope="module")
def splits(task):
    return task.build_splits()


def test_hydra_instantiates_the_task_option():
    register_configs()
    with initialize_config_dir(config_dir=os.path.abspath(CONF), version_base="1.3"):
        cfg = compose(config_name="task/mahjong", overrides=["task.variant=riichi", "task.n_train=7"])
        t = instantiate(cfg.task)
        assert isinstance(t, MahjongTask) and isinstance(t, Task)
        assert (t.name, t.variant, t.n_train, t.n_val, t.n_test) == ("mahjong", "riichi", 7, 200, 500)
        assert t.wait_distribution == {} and t.source is None  # {} = the natural mix of waits
        assert t.test_distribution == "balanced"  # the headline test split; test_natural is scored beside it
        full = compose(config_name="config", overrides=["+task=mahjong"])  # how users select it
        assert isinstance(instantiate(full.task), MahjongTask)


BAD = [
    (dict(variant="mcr"), "task.variant"),
    (dict(nontenpai_rate=1.0), "task.nontenpai_rate"),
    (dict(nontenpai_rate=-0.1), "task.nontenpai_rate"),
    (dict(nontenpai_rate="lots"), "task.nontenpai_rate"),
    (dict(notation="emoji"), "task.notation"),
    (dict(test_distribution="flat"), r"task.test_distribution': 'flat' \(allowed: natural, balanced\)"),
    (dict(n_train=0), "task.n_train"),
    (dict(n_test=2.5), "task.n_test"),
    (dict(wait_distribution={"10": 1.0}), "task.wait_distribution"),
    (dict(wait_distribution={"1": -1.0}), r"task.wait_distribution.1"),
    (dict(curriculum=[{"share": 1}]), r"task.curriculum': '1 stage' \(allowed: a list of >= 2 stages"),
    (dict(curriculum=[{"share": 1}, {"share": 0}]), r"task.curriculum\[1\].share': 0"),
    (dict(curriculum=[{"share": 1}, {"steps": 1}]), r"task.curriculum\[1\]'"),
    (dict(curriculum=[{"share": 1}, 3]), r"task.curriculum\[1\]': 3"),
    (dict(curriculum=[{}, {"wait_distribution": {"12": 1}}]), r"task.curriculum\[1\].wait_distribution': '12'"),
    (dict(curriculum=[{}, {}], n_train=1), r"task.n_train': 1 \(allowed: at least one training row per.*curriculum=\[\]"),
    (dict(n_train=1), r"task.n_train': 1 \(allowed: at least one training row per"),  # the default curriculum
]


@pytest.mark.parametrize("kwargs,key", BAD)
def test_bad_config_is_one_line_user_error(kwargs, key):
    with pytest.raises(UserError, match=key) as e:
        MahjongTask(**kwargs)
    assert "\n" not in str(e.value)


def test_all_zero_shares_mean_natural():
    assert MahjongTask(wait_distribution={"1": 0.0, "9+": 0}).wait_distribution == {}
    assert MahjongTask(wait_distribution={1: 2, "2": 1}).wait_distribution == {"1": 2.0, "2": 1.0}


def test_curriculum_draws_each_stage_with_its_own_mix_and_keeps_the_held_out_splits():
    kw = dict(n_train=400, n_val=20, n_test=40, seed=3)
    flat = {"3": 1, "4": 1}
    staged = MahjongTask(**kw, curriculum=[{"share": 3}, {"share": 1, "wait_distribution": flat}]).build_splits()
    plain = MahjongTask(**kw, curriculum=[]).build_splits()
    for split in ("val", "test", "test_natural"):  # drawn first, from the same streams: the same hands
        assert staged[split] == plain[split]
    train = staged["train"]
    by_stage = {s: [r for r in train if r["curriculum_stage"] == s] for s in (0, 1)}
    assert [len(by_stage[0]), len(by_stage[1])] == [300, 100]  # n_train split by share
    assert {r["n_waits"] for r in by_stage[1]} == {0, 3, 4}  # stage 1's own mix (+ the non-tenpai share)
    assert sum(r["n_waits"] in (1, 2) for r in by_stage[0]) > 200  # stage 0: the natural mix, mostly 1-2 waits
    assert len({r["hand"] for r in train}) == 400  # stages never repeat a hand
    assert "curriculum_stage" not in plain["train"][0]


def test_the_default_curriculum_ends_on_the_flat_mix_and_a_stage_without_a_mix_takes_the_tasks():
    from stratos.config.task import FLAT_WAITS

    assert MahjongTask(n_train=400).curriculum == [(300, {}), (100, FLAT_WAITS)]  # 3/4 natural, then flat
    assert MahjongTask(n_train=400, wait_distribution={"3": 1}).curriculum == [(300, {"3": 1.0}), (100, FLAT_WAITS)]
    assert MahjongTask(curriculum=[]).curriculum == []
    assert MahjongTask(source="hands.jsonl").curriculum == []  # a file: its own stages, as with test_distribution


def test_rows_follow_the_schema(task, splits):
    assert {s: len(r) for s, r in splits.items()} == {"train": 300, "val": 50, "test": 100, "test_natural": 100}
    for row in splits["test"] + splits["test_natural"]:
        assert set(row) >= {"id", "question", "answer", "rationale", "difficulty", "hand", "winning_tiles", "n_waits"}
        assert row["question"].startswith("Hand: ") and row["question"].endswith("\nWinning tiles?")
        assert row["difficulty"] == f"waits={row['n_waits']}" == f"waits={len(row['winning_tiles'])}"
        assert row["rationale"].endswith(task.answer_line(row))
        assert task.rationale(row) == row["rationale"]
        counts = parse_hand(row["hand"])
        assert verify_rationale(counts, row["rationale"], "riichi") == [w.tile for w in solve(counts, "riichi")]
        assert row["answer"] == (" ".join(row["winning_tiles"]) or "none")
    assert sum(r["n_waits"] == 0 for r in splits["test_natural"]) == 10  # nontenpai_rate 0.1


def test_grading(task, splits):
    row = next(r for r in splits["test"] if r["n_waits"] >= 2)
    assert task.is_correct(row, row["rationale"])
    assert task.extract(row["rationale"]) == row["winning_tiles"]
    assert task.is_correct(row, "Answer: " + " ".join(reversed(row["winning_tiles"])))
    assert not task.is_correct(row, "Answer: " + " ".join(row["winning_tiles"][:-1]))
    assert not task.is_correct(row, "no answer here")
    none_row = next(r for r in splits["test"] if r["n_waits"] == 0)
    assert task.is_correct(none_row, "Answer: none") and task.extract("Answer: none") == []
    assert not task.is_correct(none_row, "Answer: 1m")


@pytest.mark.parametrize("notation", ["compact", "unicode"])
def test_notations(notation):
    t = MahjongTask(n_train=20, n_val=5, n_test=5, seed=2, notation=notation)
    rows = t.build_splits()["test"]
    for r in rows:
        hand_text = r["question"].split("\n")[0][len("Hand: "):]
        assert parse_hand(hand_text) == parse_hand(r["hand"])
        if notation == "unicode":
            assert all(ch in UNICODE for ch in hand_text)
        assert t.is_correct(r, r["rationale"]) and t.rationale(r) == r["rationale"]


def test_features_and_corpus(task, splits):
    row = splits["test"][0]
    f = task.features(row)
    assert f["n_waits"] == row["n_waits"] and f["rationale_lines"] == row["n_waits"] + 1
    assert f["rationale_chars"] == len(row["rationale"]) and 1 <= f["n_suits"] + (f["n_honors"] > 0) <= 4
    assert all(isinstance(v, float) for v in f.values())
    basic, riichi = MahjongTask(variant="basic").corpus(), task.corpus()
    for text in (basic, riichi):
        assert "four melds and one pair" in text and "no fifth copy" in text and "Answer: " in text
    assert "Seven pairs" in riichi and "Seven pairs" not in basic


def test_source_file_splits(tmp_path, splits):
    rows = splits["train"][:40]
    path = str(tmp_path / "bench.jsonl")
    write_benchmark(rows + rows[:5], path)  # repeated hands are dropped, never split apart
    t = MahjongTask(n_train=1000, n_val=5, n_test=10, seed=4, source=path, variant="riichi")
    a, b = t.build_splits(), t.build_splits()
    # a file keeps its own mix: one test split whatever test_distribution says
    assert a == b and {s: len(r) for s, r in a.items()} == {"train": 25, "val": 5, "test": 10}
    hands = [r["hand"] for rs in a.values() for r in rs]
    assert len(set(hands)) == 40 and set(hands) == {r["hand"] for r in rows}
    by_hand = {r["hand"]: r for r in rows}
    assert all(r["winning_tiles"] == by_hand[r["hand"]]["winning_tiles"] for rs in a.values() for r in rs)
    c = MahjongTask(n_train=1000, n_val=5, n_test=10, seed=5, source=path, variant="riichi").build_splits()
    assert c["test"] != a["test"]  # the seed picks the split
    with pytest.raises(UserError, match="no such file"):
        MahjongTask(source=str(tmp_path / "missing.jsonl")).build_splits()


@pytest.mark.parametrize("variant,fmt", [("basic", "proof"), ("basic", "search"), ("basic", "suits"),
                                         ("riichi", "proof"), ("riichi", "search")])
def test_max_new_tokens_fits_the_longest_rationale(variant, fmt):
    """Measured with the students' real tokenizer (384-entry byte-level BPE trained on task text)."""
    from stratos.models.tokenizer import train_tokenizer

    worst_hands = ["1112345678999m", "1112345678999p", "2223456777m111z", "19m19p19s1234567z", "147m147p147s1234z"]
    for notation in ("spaced", "unicode"):
        t = MahjongTask(n_train=1500, n_val=5, n_test=5, seed=0, variant=variant, notation=notation,
                        rationale_format=fmt,
                        wait_distribution={"1": 0.3, "2": 0.3, "3": 0.2, "4": 0.1, "5": 0.05, "6": 0.05})
        rows = t.build_splits()["train"]
        tok = train_tokenizer([r["question"] + "\n" + r["rationale"] for r in rows] + [t.corpus()], 384)
        lengths = [len(tok(t.write_rationale(parse_hand(h), solve(parse_hand(h), variant)))["input_ids"])
                   for h in worst_hands]
        longest = max(lengths + [len(tok(r["rationale"])["input_ids"]) for r in rows])
        assert longest <= 0.87 * t.max_new_tokens, (variant, notation, longest)
        assert longest >= 0.5 * t.max_new_tokens, (variant, notation, longest)  # generous, not silly
