import pytest
from transformers import GPT2Config

from stratos.acme.arch import kept_layers, layout_of, sub_config
from stratos.errors import UserError


def test_kept_layers_nest_across_depths():
    assert kept_layers(4, 1.0) == [0, 1, 2, 3]
    assert kept_layers(4, 0.5) == [0, 2] and kept_layers(4, 0.25) == [0]
    for L in (1, 3, 4, 6, 7, 8, 12, 24):
        depths = [kept_layers(L, d) for d in (0.25, 0.5, 0.75, 1.0)]
        assert all(set(a) <= set(b) for a, b in zip(depths, depths[1:]))
        assert depths[-1] == list(range(L))


def test_sub_config_bert_keeps_head_size(make_tiny):
    cfg = make_tiny("bert", 50).config
    sub = sub_config(cfg, 0.75, 0.5)
    assert (sub.num_attention_heads, sub.attention_head_size, sub.intermediate_size, sub.num_hidden_layers) == (3, 8, 48, 2)
    assert sub.hidden_size == cfg.hidden_size and sub.stratos_elastic["layers"] == [0, 2]


def test_sub_config_llama_slices_whole_kv_groups(make_tiny):
    cfg = make_tiny("llama", 50).config  # 4 q heads, 2 kv heads -> 2 q heads per group
    sub = sub_config(cfg, 0.5, 1.0)
    assert (sub.num_attention_heads, sub.num_key_value_heads, sub.head_dim) == (2, 1, 8)
    lay = layout_of(sub)
    assert lay.group == 2 and lay.family == "llama"


def test_unknown_architecture_is_a_user_error():
    with pytest.raises(UserError, match="model_type 'gpt2'"):
        layout_of(GPT2Config())
