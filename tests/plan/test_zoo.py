"""The model zoo read from conf/teacher and conf/student."""

from __future__ import annotations

import pytest

from stratos.errors import UserError
from stratos.plan.zoo import arch_params, build_zoo, load_option, option_names

REAL_TEACHERS = ["qwen2p5_7b", "qwen2p5_14b", "qwen2p5_32b", "qwen2p5_72b", "llama3p1_8b", "llama3p1_70b"]
REAL_STUDENTS = ["qwen2p5_0p5b", "qwen2p5_1p5b", "qwen2p5_3b", "llama3p2_1b", "llama3p2_3b", "smollm2_360m",
                 "smollm2_1p7b"]


def test_every_option_loads_onto_its_dataclass():
    for group in ("teacher", "student"):
        for name in option_names(group):
            c = load_option(group, name)
            assert c.name == name, f"conf/{group}/{name}.yaml names itself {c.name}"


@pytest.mark.parametrize("name", REAL_TEACHERS + REAL_STUDENTS)
def test_real_cards_are_consistent(name):
    group = "teacher" if name in REAL_TEACHERS else "student"
    c = load_option(group, name)
    card = c.card
    assert c.name_or_path and "/" in c.name_or_path
    assert card.hidden % card.heads == 0 and card.heads % card.kv_heads == 0
    # parameters from the shape (SwiGLU with the usual d_ff ~ 2.7-5.4 h) bracket the card's figure
    lo = arch_params(card.vocab, card.hidden, card.layers, card.heads, card.kv_heads, int(2.5 * card.hidden))
    hi = arch_params(card.vocab, card.hidden, card.layers, card.heads, card.kv_heads, int(6.0 * card.hidden),
                     tied=False)
    assert lo / 1e9 * 0.95 < card.params_b < hi / 1e9 * 1.05
    assert card.tokenizer_family in ("qwen2", "llama3", "smollm2")
    assert all(0 < v <= 1 for v in card.prior_scores.values())


def test_arch_params_tiny_llama_matches_a_real_model():
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(vocab_size=384, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=384, tie_word_embeddings=True)
    model = AutoModelForCausalLM.from_config(cfg)
    assert arch_params(384, 128, 4, 4, 2, 384) == sum(p.numel() for p in model.parameters())


def test_build_zoo_lists_and_overrides(cfg_factory):
    cfg = cfg_factory(teacher="qwen2p5_7b", student="qwen2p5_0p5b")
    zoo = build_zoo(cfg)
    assert {m.name for m in zoo.teachers} == set(option_names("teacher"))
    assert {m.name for m in zoo.students} == set(option_names("student"))
    cfg.planner.teachers = ["qwen2p5_7b", "mahjong_engine"]
    cfg.planner.students = ["tiny_llama"]
    cfg.teacher.card.params_b = 9.0  # a command-line override of the composed teacher wins over its file
    zoo = build_zoo(cfg)
    assert [m.name for m in zoo.teachers] == ["qwen2p5_7b", "mahjong_engine"]
    assert zoo.teachers[0].params == 9e9 and zoo.teachers[1].kind == "engine"
    tiny = zoo.students[0]
    assert tiny.params == arch_params(384, 128, 4, 4, 4, 384)  # built from arch, not the card
    cfg.planner.students = ["gpt5"]
    with pytest.raises(UserError, match="planner.students"):
        build_zoo(cfg)


def test_student_peft_and_kv_dim(cfg_factory):
    cfg = cfg_factory(student="qwen2p5_1p5b", planner__students=["qwen2p5_1p5b"])
    cfg.student.peft.method = "lora"
    cfg.student.peft.r = 32
    s = build_zoo(cfg).students[0]
    assert s.lora_rank == 32 and s.lora_targets == 2
    assert s.kv_dim == 2 * 1536 // 12  # 2 KV heads x head_dim 128


def test_unset_required_keys_are_reported(cfg_factory):
    from stratos.plan.preflight import check_pair

    zoo = build_zoo(cfg_factory(planner__teachers=["tiny_teacher", "openai_endpoint", "qwen2p5_7b"],
                                planner__students=["tiny_llama"]))
    tiny, api, qwen = zoo.teachers
    assert tiny.unset == ["teacher.name_or_path"] and qwen.unset == []
    assert set(api.unset) == {"teacher.base_url", "teacher.model"}
    notes = check_pair(tiny, zoo.students[0], "alignment", "mahjong", 512)[2]
    assert any("needs teacher.name_or_path set" in n for n in notes)
