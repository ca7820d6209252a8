"""Shared fixtures: composed configs (CPU, tiny, tmp output dirs) and offline defaults."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on network retries for a hub id in tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist (pyproject's addopts: `-n 2`) two workers share the 2 cores: one intra-op thread each,
# and the same for every process a test starts (torch reads OMP_NUM_THREADS at import). Two threads per
# worker would oversubscribe the cores, and decoding slows several-fold when its threads get preempted.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1 if XDIST_WORKER else max(1, min(2, os.cpu_count() or 1)))

from hydra import compose, initialize_config_module  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from stratos.config import CONFIG_PACKAGE, register_configs  # noqa: E402

register_configs()  # the structured schemas, as `stratos.cli.main` registers them

SERIAL = "serial"  # the xdist group that runs on one worker, in file order


def _serial(item: pytest.Item) -> bool:
    """Tests that must not run beside each other: every user of the one Slurm cluster (some stop it, create
    partitions or requeue jobs; two at once would also wait on each other's jobs for its 2 CPUs), and the
    user guide's snippets, which run in page order and share servers that earlier snippets started."""
    return (item.get_closest_marker("slurm") is not None or "slurm_cluster" in getattr(item, "fixturenames", ())
            or item.path.name == "test_docs.py")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns xdist_group marks into the nodeid's @group
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _serial(item):
            item.add_marker(pytest.mark.xdist_group(SERIAL))


def compose_cfg(overrides: list[str] | None = None, tmp_path=None):
    """Compose the real config tree with `overrides`; outputs under `tmp_path` when given."""
    GlobalHydra.instance().clear()
    extra = [f"paths.output_root={tmp_path}"] if tmp_path is not None else []
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        return compose("config", overrides=[*(overrides or []), *extra])


@pytest.fixture
def cfg_fast(tmp_path):
    """The whole pipeline at smoke-test size (conf/debug/fast.yaml) writing into tmp_path."""
    return compose_cfg(["+task=mahjong", "debug=fast"], tmp_path)


@pytest.fixture
def torch_one_thread():
    """torch at one intra-op thread for the test, restored after (tiny models gain nothing from more)."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> dict[str, str]:
    """{"src", "hf", "onnx"}: a Llama h64/L2 (GQA 4 heads / 2 KV heads), vocab 300, exported (export, serve and
    models tests share it; built once per session, in seconds)."""
    from tests.helpers.tiny_export import build_tiny_export

    return build_tiny_export(str(tmp_path_factory.mktemp("tiny_export")), heads=4, kv_heads=2)
