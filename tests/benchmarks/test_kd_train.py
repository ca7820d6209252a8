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


def test_policy_selects_its_variants():
    assert kd_train.select("on") == ["trl_on_fp32", "trl_on_bf16", "stratos_on_fp32", "stratos_on_bf16"]
    assert "stratos_fp32" in kd_train.select("off") and not any("_on_" in x for x in kd_train.select("off"))
    assert kd_train.select("both") == list(kd_train.VARIANTS)
    assert kd_train.select("on", ["stratos_fp32"]) == ["stratos_fp32"]


def test_on_policy_both_sides_train_on_student_samples(pair):
    """lambda 1 on both sides: every row trained on is prompt + the student's sample (the data's completions never
    are), both sides sample, and both students end at about the same held-out KL."""
    pytest.importorskip("trl", reason="TRL is not installed (pip install -c constraints.txt -e '.[bench]')")
    steps = 6
    runs = {side: kd_train.worker(f"{side}_on_fp32", pair, steps=steps, threads=1) for side in kd_train.SIDES}
    for side, r in runs.items():
        assert r["steps"] == steps and r["tokens_per_s"] > 0 and r["sampled_tokens"] > 0 and r["sampling_seconds"] > 0
        assert r["sampled_tokens"] <= steps * kd_train.BATCH * kd_train.MAX_NEW_TOKENS, side
        assert r["tokens"] == steps * kd_train.BATCH * kd_train.PROMPT + r["sampled_tokens"], side
        assert r["kl_after"] < r["kl_before"], side
    assert runs["stratos"]["kl_after"] == pytest.approx(runs["trl"]["kl_after"], rel=0.05)
