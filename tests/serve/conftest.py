"""A tiny exported model (hf/ + onnx/) and engines over it, built once per test session (seconds)."""

from __future__ import annotations

import pytest
import torch
from transformers.utils import logging as hf_logging


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
def onnx_engine(tiny_export):
    from stratos.serve.engine import load_engine

    return load_engine(tiny_export["onnx"], "onnx", threads=1)


@pytest.fixture(scope="session")
def torch_engine(tiny_export):
    from stratos.serve.engine import load_engine

    return load_engine(tiny_export["hf"], "torch", threads=1)
