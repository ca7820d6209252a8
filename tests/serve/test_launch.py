"""Serving after the pipeline: which artifact, which limits."""

from __future__ import annotations

import pytest

from stratos.artifacts import Manifest
from stratos.errors import UserError
from stratos.serve.launch import model_dir_for, settings_from_deploy
from tests.conftest import compose_cfg


def test_model_dir_for(tiny_export):
    both = Manifest(stage="export", config_hash="h", outputs={"hf": tiny_export["hf"], "onnx": tiny_export["onnx"]})
    hf_only = Manifest(stage="export", config_hash="h", outputs={"hf": tiny_export["hf"]})
    assert model_dir_for(both, "auto") == (tiny_export["onnx"], "onnx")
    assert model_dir_for(both, "torch") == (tiny_export["hf"], "torch")
    assert model_dir_for(hf_only, "auto") == (tiny_export["hf"], "torch")
    with pytest.raises(UserError, match="deploy.backend"):
        model_dir_for(hf_only, "onnx")


def test_settings_from_deploy(tmp_path, monkeypatch):
    cfg = compose_cfg(["+task=mahjong", "deploy=onnx", "deploy.port=0", "deploy.max_concurrency=3"], tmp_path)
    monkeypatch.delenv("STRATOS_API_KEY", raising=False)
    s = settings_from_deploy(cfg.deploy)
    assert (s.host, s.port, s.max_concurrency, s.api_key) == ("127.0.0.1", 0, 3, None)
    monkeypatch.setenv("STRATOS_API_KEY", "k")
    assert settings_from_deploy(cfg.deploy).api_key == "k"
    bad = compose_cfg(["+task=mahjong", "deploy=onnx", "deploy.host=0.0.0.0.1"], tmp_path)
    with pytest.raises(UserError, match="'host'"):
        settings_from_deploy(bad.deploy)
