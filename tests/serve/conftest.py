"""A tiny exported model (hf/ + onnx/) and engines over it, built once per test session (seconds)."""

from __future__ import annotations

import pytest
import torch
from transformers.utils import logging as hf_logging

from tests.helpers.tiny_export import build_tiny_export

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
def tiny_export(tmp_path_factory) -> dict[str, str]:
    """{"src", "hf", "onnx"}: a Llama h64/L2 (GQA 4 heads / 2 KV heads), vocab 300, exported."""
    return build_tiny_export(str(tmp_path_factory.mktemp("tiny_export")), heads=4, kv_heads=2)


@pytest.fixture(scope="session")
def onnx_engine(tiny_export):
    from stratos.serve.engine import load_engine

    return load_engine(tiny_export["onnx"], "onnx", threads=1)


@pytest.fixture(scope="session")
def torch_engine(tiny_export):
    from stratos.serve.engine import load_engine

    return load_engine(tiny_export["hf"], "torch", threads=1)
