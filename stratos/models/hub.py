"""Load a transformers model + tokenizer by hub name or local path, failing clearly when absent.

Order: a local directory; then the local HF cache (`local_files_only`); then a real download
(unless HF_HUB_OFFLINE=1). When all fail the user gets one line saying which key, which value,
and what to do — never a silent fallback to some other model.
"""

from __future__ import annotations

import os

from stratos.errors import UserError
from stratos.models.tokenizer import load_tokenizer

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def lm_parts(model):
    """(base transformer, LM head) of a causal LM, through a PEFT wrapper if there is one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder() if hasattr(inner, "get_decoder") else inner.base_model, inner.get_output_embeddings()


def load_causal_lm(name_or_path: str, key: str, dtype: str = "float32"):
    """(model, tokenizer) for a causal LM. `key` names the config key for error messages."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise UserError(f"invalid value for '{key.rsplit('.', 1)[0]}.dtype': {dtype!r} (allowed: {', '.join(DTYPES)})")
    torch_dtype = getattr(torch, DTYPES[dtype])
    is_dir = os.path.isdir(name_or_path)
    if not is_dir and name_or_path.startswith(("/", "./", "../", "~")):
        raise UserError(f"invalid value for '{key}': {name_or_path!r} (allowed: an existing directory or a hub id)")
    attempts = [True] if is_dir else [True, False]  # local_files_only first, then a real download
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        attempts = [True]
    last: Exception | None = None
    for local_only in attempts:
        try:
            tok = (load_tokenizer(name_or_path) if is_dir
                   else AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only))
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch_dtype, local_files_only=local_only)
            return model, tok
        except (OSError, ValueError) as e:  # transformers raises OSError for missing files / no network
            last = e
    where = "the directory has no loadable model" if is_dir else "not in the local HF cache and the download failed"
    reason = str(last).strip().splitlines()[0][:160] if last else ""
    raise UserError(
        f"cannot load '{key}'={name_or_path!r}: {where} ({reason}). "
        f"Download the weights first (e.g. `huggingface-cli download {name_or_path}`) or set {key} to a local checkpoint."
    )
