"""The data stage's artifact contract: the names of the files it writes in its directory.

Every reader (distill, evaluate, export, report) takes these names with the data manifest
(`manifest.path(TEST_JSONL)`), never a spelling of its own.
"""

TRAIN_JSONL = "train.jsonl"
VAL_JSONL = "val.jsonl"
TEST_JSONL = "test.jsonl"
SPLIT_FILES = {"train": TRAIN_JSONL, "val": VAL_JSONL, "test": TEST_JSONL}
CORPUS_TXT = "corpus.txt"  # domain knowledge for injection (the task's rules text)
STATS_JSON = "stats.json"  # rows per difficulty bucket and split, synthetic or not


def split_file(split: str) -> str:
    """File name of a split: the three above, or `test_<label>.jsonl` for a task's extra test split."""
    return SPLIT_FILES.get(split, f"{split}.jsonl")


def held_out_files(outputs) -> list[tuple[str, str]]:
    """[(split, file name)] of every test split among a data manifest's outputs: `test` first, then the
    extra `test_<label>` splits by name."""
    names = sorted(n for n in outputs if n.startswith("test_") and n.endswith(".jsonl"))
    return [("test", TEST_JSONL)] * (TEST_JSONL in outputs) + [(n[: -len(".jsonl")], n) for n in names]
