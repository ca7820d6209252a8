"""HF export: loadable checkpoint + tokenizer + generation config + the training-format chat template."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from stratos.export.hf import CHAT_TEMPLATE, export_hf, load_tokenizer, read_export_meta
from stratos.models.generate import encode_prompt

TEXT = "Hand: 1m 2m 3m 4p 5p 6p 7s 8s 9s 1z 1z 5m 5m\nWhich tiles complete this hand?"


def _logits(model_dir: str, text: str = TEXT) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = load_tokenizer(model_dir)
    with torch.inference_mode():
        return model(torch.tensor([encode_prompt(tok, text)])).logits[0]


def test_files_and_same_function(tiny_export):
    hf = tiny_export["hf"]
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert os.path.exists(os.path.join(hf, f)), f
    cfg = json.load(open(os.path.join(hf, "config.json")))
    assert cfg["rope_theta"] == cfg["rope_parameters"]["rope_theta"]  # what transformers 4.x reads
    tcfg = json.load(open(os.path.join(hf, "tokenizer_config.json")))
    assert tcfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tcfg["chat_template"] == CHAT_TEMPLATE  # inline: transformers < 4.49 reads only this
    assert tcfg["model_max_length"] == cfg["max_position_embeddings"]
    gen = GenerationConfig.from_pretrained(hf)
    assert gen.do_sample is False and gen.max_new_tokens == 64 and gen.eos_token_id == cfg["eos_token_id"]
    assert read_export_meta(hf)["name"] == "tiny"
    assert torch.equal(_logits(tiny_export["src"]), _logits(hf))


def test_chat_template_is_the_training_format(tiny_export):
    tok = load_tokenizer(tiny_export["hf"])
    msgs = [{"role": "user", "content": TEXT}]
    ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert list(ids) == encode_prompt(tok, TEXT)
    with_system = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, *msgs], tokenize=False,
                                          add_generation_prompt=True)
    assert with_system == f"{tok.bos_token}Be brief.\n{TEXT}\n"  # kept, not silently dropped


def test_qwen2_family_keeps_its_trained_tokenization(tiny_factory, tmp_path):
    """transformers 5's AutoTokenizer would swap in Qwen2Tokenizer (other pre-tokenizer); load_tokenizer must not."""
    from tokenizers import Tokenizer

    src = tiny_factory("qwen2", heads=4, kv_heads=2)
    export_hf(src, str(tmp_path), name="q", max_new_tokens=8)
    raw = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tok = load_tokenizer(str(tmp_path))
    assert tok(" 1m 2m 9s", add_special_tokens=False)["input_ids"] == raw.encode(" 1m 2m 9s").ids


def test_unmerged_adapter_is_merged(tiny_export, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_export["src"])
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(0)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # B = 0 at init would make the merge a no-op
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    load_tokenizer(tiny_export["src"]).save_pretrained(adapter)
    with torch.inference_mode():
        want = peft_model(torch.tensor([[1, 40, 41, 42]])).logits[0]
    export_hf(str(adapter), str(tmp_path / "merged"), name="m")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.inference_mode():
        got = model(torch.tensor([[1, 40, 41, 42]])).logits[0]
    assert (got - want).abs().max() < 1e-4
    assert (got - _logits(tiny_export["src"], "x")[:1]).abs().max() > 0  # the adapter changed something


def test_missing_checkpoint_is_a_user_error(tmp_path):
    from stratos.errors import UserError

    with pytest.raises(UserError, match="distill output"):
        export_hf(str(tmp_path), str(tmp_path / "out"), name="x")


LOAD4 = r"""
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d); model = AutoModelForCausalLM.from_pretrained(d).eval()
ids = tok.apply_chat_template([{"role": "user", "content": sys.argv[2]}], tokenize=True, add_generation_prompt=True)
with torch.no_grad():
    z = model(torch.tensor([ids])).logits[0, -1, :8].tolist()
print(json.dumps({"version": transformers.__version__, "ids": list(ids), "logits": z}))
"""


@pytest.mark.skipif(not os.environ.get("STRATOS_TRANSFORMERS4_PYTHON"),
                    reason="set STRATOS_TRANSFORMERS4_PYTHON to a python with transformers 4.x to run")
def test_loads_in_transformers_4(tiny_export):
    out = subprocess.run([os.environ["STRATOS_TRANSFORMERS4_PYTHON"], "-c", LOAD4, tiny_export["hf"], TEXT],
                         capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["version"].startswith("4.")
    tok = load_tokenizer(tiny_export["hf"])
    assert got["ids"] == encode_prompt(tok, TEXT)
    want = _logits(tiny_export["hf"])[-1, :8]
    assert torch.allclose(torch.tensor(got["logits"]), want, atol=1e-5)
