"""Weights present or obtainable, checked before any work: never a download, never minutes later."""

from __future__ import annotations

import pytest

from stratos.errors import UserError
from stratos.models.weights import check_obtainable, weights_status


def test_weights_built_from_config_local_dir_and_absent(tmp_path):
    assert weights_status(None) == (True, "built from config")
    ok, why = weights_status(str(tmp_path))
    assert not ok and "config.json" in why
    (tmp_path / "config.json").write_text("{}")
    assert weights_status(str(tmp_path))[0]
    ok, why = weights_status("no-such-org/no-such-model-xyz")
    assert not ok and "not in the Hugging Face cache" in why
    ok, why = weights_status("./outputs/nothing/here")
    assert not ok and "no checkpoint directory" in why


def test_weights_in_hf_cache(tmp_path, monkeypatch):
    # a cache laid out as huggingface_hub writes it: models--org--name/{refs/main, snapshots/<rev>/config.json}
    repo = tmp_path / "hub" / "models--acme--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as C

    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "hub"))
    ok, why = weights_status("acme/tiny")
    assert ok and "cache" in why


def test_absent_weights_offline_are_refused_in_one_line(monkeypatch):
    import huggingface_hub.constants as C

    monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)
    check_obtainable("student.name_or_path", None)  # built from config: nothing to fetch
    with pytest.raises(UserError, match=r"invalid value for 'student.name_or_path': 'no-org/absent-model' "
                                        r"\(weights for no-org/absent-model not present"):
        check_obtainable("student.name_or_path", "no-org/absent-model")
