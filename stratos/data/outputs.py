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
