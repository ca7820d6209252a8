"""Tiny checkpoints in the distill stage's output format, built once per test session (seconds)."""

from __future__ import annotations

import pytest
import torch
from transformers.utils import logging as hf_logging

from tests.helpers.tiny_export import build_tiny_checkpoint

hf_logging.disable_progress_bar()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU two spinning OpenMP threads
    stall each op for milliseconds; the export code itself runs with deploy.threads (default 1)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="session")
def tiny_factory(tmp_path_factory):
    """Build a checkpoint of any supported family: tiny_factory("qwen2", seed=1) -> path."""
    cache: dict = {}

    def make(family: str = "llama", **kw) -> str:
        key = (family, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = build_tiny_checkpoint(str(tmp_path_factory.mktemp(f"tiny_{family}")), family=family, **kw)
        return cache[key]

    return make
