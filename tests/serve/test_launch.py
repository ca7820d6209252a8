"""Serving after the pipeline: which artifact, which limits."""

from __future__ import annotations

import pytest

from stratos.artifacts import Manifest
from stratos.errors import UserError
from stratos.serve.launch import model_dir_for, settings_from_config
from stratos.serve.settings import ServeSettings
from tests.conftest import compose_cfg


def test_model_dir_for(tiny_export):
    both = Manifest(stage="export", config_hash="h", outputs={"hf": tiny_export["hf"], "onnx": tiny_export["onnx"]})
    hf_only = Manifest(stage="export", config_hash="h", outputs={"hf": tiny_export["hf"]})
    assert model_dir_for(both, "auto") == (tiny_export["onnx"], "onnx")
    assert model_dir_for(both, "torch") == (tiny_export["hf"], "torch")
    assert model_dir_for(hf_only, "auto") == (tiny_export["hf"], "torch")
    with pytest.raises(UserError, match="serve.backend"):
        model_dir_for(hf_only, "onnx")


def test_settings_from_config(tmp_path, monkeypatch):
    cfg = compose_cfg(["+task=mahjong", "serve.port=0", "serve.max_concurrency=3"], tmp_path)
    monkeypatch.delenv("STRATOS_API_KEY", raising=False)
    s = settings_from_config(cfg.serve)
    assert isinstance(s, ServeSettings)
    assert (s.host, s.port, s.max_concurrency, s.api_key, s.enabled) == ("127.0.0.1", 0, 3, None, False)
    monkeypatch.setenv("STRATOS_API_KEY", "k")
    assert settings_from_config(cfg.serve).api_key == "k"
    bad = compose_cfg(["+task=mahjong", "serve.host=0.0.0.0.1"], tmp_path)
    with pytest.raises(UserError, match="'serve.host'"):
        settings_from_config(bad.serve)


def test_a_key_written_in_the_config_is_refused(tmp_path):
    cfg = compose_cfg(["+task=mahjong", "serve.api_key=secret"], tmp_path)
    with pytest.raises(UserError, match="serve.api_key"):
        settings_from_config(cfg.serve)
