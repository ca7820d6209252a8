"""The KD training benchmark's moving parts, at toy size: both trainers run, learn, and agree."""

from __future__ import annotations

import pytest

from benchmarks import kd_train


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    kd_train.build_pair(str(root), vocab=64, n_train=8 * kd_train.BATCH, n_heldout=16)
    return str(root)


@pytest.mark.parametrize("variant", ["stratos_fp32", "stratos_store_fp32"])
def test_stratos_variants_train_and_lower_heldout_kl(pair, variant):
    r = kd_train.worker(variant, pair, steps=8, threads=1)
    assert r["steps"] == 8 and r["tokens_per_s"] > 0
    assert r["kl_after"] < r["kl_before"]
    if variant == "stratos_store_fp32":
        assert 0 < r["store_seconds"] and r["store_bytes_per_token"] <= 32 * 4 + 2 + 1


def test_trl_gkd_matches_stratos_live_kd(pair):
    """Same init, data, optimiser and loss: after a few steps both students sit at about the same KL."""
    pytest.importorskip("trl", reason="TRL is not installed (pip install -c constraints.txt -e '.[bench]')")
    trl = kd_train.worker("trl_fp32", pair, steps=8, threads=1)
    ours = kd_train.worker("stratos_fp32", pair, steps=8, threads=1)
    assert trl["kl_after"] < trl["kl_before"]
    assert ours["kl_after"] == pytest.approx(trl["kl_after"], rel=0.02)
