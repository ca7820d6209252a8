"""HF export: the merged student as a checkpoint that transformers 4.x and 5.x, vLLM and Stratos' own
server all load, with its tokenizer, a greedy generation config and the chat template it was trained with.

transformers 5 writes a few things older readers miss; each is patched here and was checked by
loading the result with transformers 4.46.3 and 5.23.0 (identical logits):
  config.json            `rope_parameters` only -> also write `rope_theta`/`rope_scaling` (4.x reads
                         those; a missing `rope_theta` silently becomes 10000, wrong for e.g. Qwen2.5).
                         (`torch_dtype` is not added: 5.x warns on it, and 4.x loads float32 without it.)
  tokenizer_config.json  `tokenizer_class: TokenizersBackend` -> `PreTrainedTokenizerFast`;
                         template only in chat_template.jinja -> also `chat_template` inline (4.x < 4.49
                         reads only that); `model_max_length` 1e30 -> the model's context.

Chat template. The student was distilled on `BOS + question + "\\n"` (stratos.models.generate.encode_prompt),
so the exported template renders exactly that for a single user turn, whatever template a pretrained
student came with: serving the training format is what makes chat completions match evaluation.
System/developer turns are rendered as plain lines before the next turn rather than dropped (the
training format has no slot for them; dropping text a caller sent would answer another question).
"""

from __future__ import annotations

import json
import os
import shutil

from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from stratos.errors import UserError
from stratos.models.tokenizer import load_tokenizer, save_tokenizer  # noqa: F401  (load_tokenizer re-exported)

EXPORT_META = "stratos_export.json"
# One user turn renders as bos + content + "\n": exactly stratos.models.generate.encode_prompt.
CHAT_TEMPLATE = (
    "{{ bos_token or '' }}{% for m in messages %}"
    "{% if m['role'] in ('system', 'developer', 'user') %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def _load_model(src: str):
    """The checkpoint in `src`; a bare PEFT adapter directory is merged into its base on the fly."""
    if os.path.exists(os.path.join(src, "config.json")):
        return AutoModelForCausalLM.from_pretrained(src, dtype="auto")
    if os.path.exists(os.path.join(src, "adapter_config.json")):
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(src).merge_and_unload()
    raise UserError(f"invalid distill output: {src!r} holds no config.json or adapter_config.json "
                    f"(allowed: a save_pretrained checkpoint directory)")


def _patch_json(path: str, update) -> dict:
    with open(path) as f:
        data = json.load(f)
    update(data)
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    return data


def _legacy_config_keys(cfg: dict) -> None:
    rope = cfg.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        cfg.setdefault("rope_theta", rope["rope_theta"])
        if rope.get("rope_type", "default") != "default":  # 4.x: rope_scaling = {"type"/"rope_type", factor, ...}
            scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
            scaling.setdefault("type", scaling["rope_type"])
            cfg.setdefault("rope_scaling", scaling)


def export_hf(src: str, dst: str, *, name: str, max_new_tokens: int = 256) -> dict:
    """Write the loadable checkpoint to `dst`; returns facts for the manifest.

    `name` is the served model name; `max_new_tokens` becomes the generation config's budget.
    """
    model = _load_model(src)
    tok = load_tokenizer(src)
    if tok.pad_token is None:  # batching and the ONNX runtime need a pad id; EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    os.makedirs(dst, exist_ok=True)
    model.save_pretrained(dst)
    tok.chat_template = CHAT_TEMPLATE
    save_tokenizer(tok, dst)
    context = int(getattr(model.config, "max_position_embeddings", 0) or getattr(model.config, "n_positions", 0))
    gen = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                           do_sample=False, max_new_tokens=int(max_new_tokens))
    gen.save_pretrained(dst)
    _patch_json(os.path.join(dst, "config.json"), _legacy_config_keys)

    def tok_fix(cfg: dict) -> None:
        cfg["chat_template"] = CHAT_TEMPLATE
        if context:
            cfg["model_max_length"] = context

    _patch_json(os.path.join(dst, "tokenizer_config.json"), tok_fix)
    n_params = sum(p.numel() for p in model.parameters())
    meta = {"name": name, "source": os.path.abspath(src), "architecture": type(model).__name__,
            "context": context, "n_params": n_params, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "max_new_tokens": int(max_new_tokens),
            "prompt_format": "bos + question + '\\n' (chat template: one user turn)"}
    with open(os.path.join(dst, EXPORT_META), "w") as f:
        json.dump(meta, f, indent=2)
    return meta


def copy_tokenizer_files(src: str, dst: str) -> None:
    """Put the exported tokenizer/generation files beside another artifact (e.g. the ONNX graph)."""
    os.makedirs(dst, exist_ok=True)
    for fname in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                  "generation_config.json", "config.json", EXPORT_META):
        if os.path.exists(os.path.join(src, fname)):
            shutil.copy2(os.path.join(src, fname), os.path.join(dst, fname))


def read_export_meta(model_dir: str) -> dict:
    """stratos_export.json of an exported directory ({} when absent, e.g. a plain HF checkpoint)."""
    path = os.path.join(model_dir, EXPORT_META)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
